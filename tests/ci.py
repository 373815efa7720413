"""Whether the tests run under CI, and what a missing service means there.

Every test that needs a service of the machine (PostgreSQL, Mosquitto, Chromium) asks here: on a
developer's machine a missing service skips the test, under CI (``CI`` set to ``1``, ``true`` or
``yes``, in any case) it fails it, so a broken CI machine never passes by skipping.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

CI_VALUES = ("1", "true", "yes")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def unavailable(what: str) -> NoReturn:
    """Skip the test because ``what`` is missing; fail it instead under CI."""
    if in_ci():
        pytest.fail(f"{what} (CI is set: these tests must run)", pytrace=False)
    pytest.skip(what)
