"""``store.webhook_replays``: a signed webhook's key is taken once, survives a restart, and is
forgotten after the retention period (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctiwatch.storage import Store
from ctiwatch.storage.replays import REPLAY_RETENTION

AT = datetime(2026, 12, 8, 9, 30, tzinfo=UTC)


async def test_a_key_is_taken_the_first_time_and_refused_after(store: Store) -> None:
    assert await store.webhook_replays.first_time("sms:SM1", AT) is True
    assert await store.webhook_replays.first_time("sms:SM1", AT + timedelta(days=3)) is False
    assert await store.webhook_replays.first_time("sms:SM2", AT) is True
    assert await store.webhook_replays.count() == 2


async def test_a_remembered_key_survives_a_restart(storage_url: str) -> None:
    async with Store.open(storage_url) as store:
        assert await store.webhook_replays.first_time("status:SM1:delivered", AT) is True
    async with Store.open(storage_url) as store:
        assert await store.webhook_replays.first_time("status:SM1:delivered", AT) is False


async def test_keys_older_than_the_retention_are_forgotten_as_new_ones_come(store: Store) -> None:
    assert timedelta(days=400) == REPLAY_RETENTION
    await store.webhook_replays.first_time("sms:old", AT)
    await store.webhook_replays.first_time("sms:kept", AT + timedelta(days=1))
    later = AT + REPLAY_RETENTION + timedelta(seconds=1)
    assert await store.webhook_replays.first_time("sms:new", later) is True
    assert await store.webhook_replays.count() == 2
    assert await store.webhook_replays.first_time("sms:kept", later) is False
    assert await store.webhook_replays.first_time("sms:old", later) is True


@pytest.mark.parametrize("key", ["", "x" * 201, "sms:\0"])
async def test_an_unusable_key_is_a_value_error(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="webhook replay: a key of 1 to 200 characters, no NUL"):
        await store.webhook_replays.first_time(key, AT)
