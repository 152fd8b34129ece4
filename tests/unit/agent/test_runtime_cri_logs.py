"""CRI log files read back as kubelet serves them (agent/runtime/cri_logs.py)."""
from __future__ import annotations

import asyncio

from agent.runtime import cri_logs

T1, T2, T3 = "2026-01-02T03:04:05.000000001Z", "2026-01-02T03:04:06.5Z", "2026-01-02T03:04:07.123456789Z"
FILE = (f"{T1} stdout F first\n"
        f"{T1} stderr P par\n"
        f"{T2} stdout F second\n"
        f"{T2} stderr P tial \n"
        f"{T3} stderr F line\n").encode()


def test_parse_record_fields_and_legacy_lines():
    assert cri_logs.parse_record(f"{T1} stdout F hello world".encode()) == (T1, "stdout", False, b"hello world")
    assert cri_logs.parse_record(f"{T1} stderr P ".encode()) == (T1, "stderr", True, b"")
    assert cri_logs.parse_record(f"{T1} stdout F".encode()) == (T1, "stdout", False, b"")
    # Without the tag field (older runtimes) the rest is the whole line.
    assert cri_logs.parse_record(f"{T1} stdout hello there".encode()) == (T1, "stdout", False, b"hello there")
    assert cri_logs.parse_record(b"garbage") is None
    assert cri_logs.parse_record(f"{T1} stdin F x".encode()) is None


def test_partial_records_join_per_stream_with_the_first_fragment_time():
    lines, joiner = cri_logs.parse_lines(FILE)
    assert [(line.stream, line.text) for line in lines] == [
        ("stdout", b"first\n"), ("stdout", b"second\n"), ("stderr", b"partial line\n")]
    assert lines[2].timestamp == T1
    assert abs(lines[1].when - 1767323046.5) < 1e-6
    assert joiner.flush() == []


def test_select_since_then_tail():
    lines, _ = cri_logs.parse_lines(FILE)
    assert [x.text for x in cri_logs.select(lines, 1, None)] == [b"partial line\n"]
    assert cri_logs.select(lines, 0, None) == []
    assert [x.text for x in cri_logs.select(lines, None, lines[1].when)] == [b"second\n"]
    assert len(cri_logs.select(lines, 10, None)) == 3


def test_render_with_timestamps():
    lines, _ = cri_logs.parse_lines(FILE)
    assert cri_logs.render(lines[0], True) == f"{T1} first\n".encode()
    assert cri_logs.render(lines[0], False) == b"first\n"


async def _collect(it) -> bytes:
    return b"".join([chunk async for chunk in it])


async def test_read_log_whole_file_tail_and_an_unfinished_partial(tmp_path):
    path = tmp_path / "0.log"
    path.write_bytes(FILE + f"{T3} stdout P no newline yet\n".encode())
    assert await _collect(cri_logs.read_log(str(path))) == b"first\nsecond\npartial line\nno newline yet"
    assert await _collect(cri_logs.read_log(str(path), tail=1)) == b"partial line\nno newline yet"
    assert await _collect(cri_logs.read_log(str(tmp_path / "missing.log"))) == b""


async def test_follow_reads_appended_records_and_ends_when_the_container_stops(tmp_path, monkeypatch):
    monkeypatch.setattr(cri_logs, "FOLLOW_POLL", 0.01)
    monkeypatch.setattr(cri_logs, "RUNNING_CHECK_PERIOD", 0.01)
    path = tmp_path / "0.log"
    path.write_bytes(f"{T1} stdout F one\n".encode())
    state = {"running": True}

    async def running() -> bool:
        return state["running"]
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in cri_logs.read_log(str(path), follow=True, running=running):
            got.append(chunk)
    task = asyncio.create_task(follow())
    async def until(n: int) -> None:
        while len(got) < n:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(until(1), 5)
    with open(path, "ab") as f:
        f.write(f"{T2} stdout P tw".encode())   # a record still being written: not read yet
        f.flush()
        f.write(b"o\n")
        f.write(f"{T2} stdout F !\n".encode())
    await asyncio.wait_for(until(2), 5)
    assert got == [b"one\n", b"two!\n"]
    assert not task.done()
    state["running"] = False
    await asyncio.wait_for(task, 5)
