"""A missing service skips a test on a developer's machine and fails it under CI, whichever
spelling of ``CI`` the CI system uses."""

from __future__ import annotations

import pytest
from ci import in_ci, unavailable


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " True "])
def test_ci_set_to_any_spelling_fails_a_test_whose_service_is_missing(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is True
    with pytest.raises(pytest.fail.Exception, match=r"^broker down \(CI is set: these tests"):
        unavailable("broker down")


@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_without_ci_a_missing_service_skips_the_test(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is False
    with pytest.raises(pytest.skip.Exception, match=r"^broker down$"):
        unavailable("broker down")


def test_ci_unset_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert in_ci() is False
