"""``alerting.outbox_retention``: how long sent and failed messages stay in the outbox."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from ctiwatch.config import Config, ConfigError, load_config


def test_outbox_retention_defaults_to_90_days() -> None:
    assert Config().alerting.outbox_retention == timedelta(days=90)


def test_outbox_retention_is_read_as_a_duration(tmp_path: Path) -> None:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text("alerting:\n  outbox_retention: 30d\n", encoding="utf-8")
    assert load_config(path, {}).alerting.outbox_retention == timedelta(days=30)


def test_outbox_retention_under_a_day_is_refused_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "ctiwatch.yaml"
    path.write_text("alerting:\n  outbox_retention: 12h\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.errors == [
        "alerting.outbox_retention: must be greater than or equal to 1 day"
    ]
