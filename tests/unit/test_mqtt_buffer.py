"""The agent's on-disk buffer: order kept, rows leave only when acknowledged, survives a restart."""

from __future__ import annotations

from pathlib import Path

from ctiwatch.mqtt.buffer import ResultBuffer


async def test_results_come_out_oldest_first_across_appends(tmp_path: Path) -> None:
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        await buffer.append([b"1", b"2", b"3"])
        await buffer.append([b"4", b"5"])

        first = await buffer.peek(4)

        assert [row.payload for row in first] == [b"1", b"2", b"3", b"4"]
        assert [row.seq for row in first] == [1, 2, 3, 4]
        assert len(buffer) == 5


async def test_peek_keeps_rows_until_delete_through(tmp_path: Path) -> None:
    async with await ResultBuffer.open(tmp_path / "agent.db") as buffer:
        await buffer.append([b"a", b"b", b"c"])

        first = await buffer.peek(2)
        second = await buffer.peek(2)  # not acknowledged yet: the same rows again
        assert first == second
        await buffer.delete_through(first[-1].seq)

        assert [row.payload for row in await buffer.peek(10)] == [b"c"]
        assert len(buffer) == 1


async def test_buffer_survives_a_restart_and_keeps_counting_up(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    async with await ResultBuffer.open(path) as buffer:
        await buffer.append([b"a", b"b", b"c"])
        await buffer.delete_through(3)  # everything acknowledged
        await buffer.append([b"d", b"e"])

    async with await ResultBuffer.open(path) as reopened:
        rows = await reopened.peek(10)
        await reopened.append([b"f"])
        after = await reopened.peek(10)

    assert [(row.seq, row.payload) for row in rows] == [(4, b"d"), (5, b"e")]
    assert [(row.seq, row.payload) for row in after] == [(4, b"d"), (5, b"e"), (6, b"f")]


async def test_bounded_buffer_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    async with await ResultBuffer.open(tmp_path / "agent.db", max_rows=3) as buffer:
        await buffer.append([b"1", b"2"])
        await buffer.append([b"3", b"4", b"5"])

        assert [row.payload for row in await buffer.peek(10)] == [b"3", b"4", b"5"]
        assert (len(buffer), buffer.dropped) == (3, 2)


async def test_creates_missing_directories(tmp_path: Path) -> None:
    async with await ResultBuffer.open(tmp_path / "var" / "lib" / "agent.db") as buffer:
        await buffer.append([b"x"])

    assert (tmp_path / "var" / "lib" / "agent.db").exists()
