"""Container logs as a CRI runtime writes them: one file per container attempt,
one record per line, `<RFC3339Nano> <stdout|stderr> <F|P> <text>`; P marks a
partial line (the runtime split a long line, or the process wrote without a
newline), continued by the next record of the same stream. Here they are joined
back into whole lines, so tail/since count what the process printed."""
from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

from kubeling.timefmt import parse_time

FOLLOW_POLL = 0.1          # seconds between looks at a followed file at its end
RUNNING_CHECK_PERIOD = 1.0  # how often a followed log asks whether the container still runs
CHUNK = 1 << 16


@dataclass
class LogLine:
    timestamp: str   # as written (RFC 3339 with nanoseconds)
    when: float      # seconds since the epoch; 0 if unreadable
    stream: str      # stdout | stderr
    text: bytes      # the line's bytes, with its newline when the process wrote one


def parse_record(raw: bytes) -> tuple[str, str, bool, bytes] | None:
    """(timestamp, stream, partial, content) of one record (without its trailing
    newline); None for a line that is not a CRI record."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    ts, stream, tag = parts[0], parts[1], parts[2]
    if stream not in (b"stdout", b"stderr"):
        return None
    # Runtimes before the tag field existed wrote no tag: then the record is whole.
    if tag in (b"F", b"P"):
        content = parts[3] if len(parts) == 4 else b""
        partial = tag == b"P"
    else:
        content = raw.split(b" ", 2)[2]
        partial = False
    return ts.decode(errors="replace"), stream.decode(), partial, content


def _epoch(ts: str) -> float:
    when = parse_time(ts)
    return when.timestamp() if when else 0.0


class LineJoiner:
    """Feeds records in, gives whole lines out: partial records of a stream are held
    until the record that completes them (the first fragment's time is the line's)."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[str, list[bytes]]] = {}

    def feed(self, raw: bytes) -> LogLine | None:
        rec = parse_record(raw.rstrip(b"\n"))
        if rec is None:
            return None
        ts, stream, partial, content = rec
        first_ts, parts = self._pending.pop(stream, (ts, []))
        parts.append(content)
        if partial:
            self._pending[stream] = (first_ts, parts)
            return None
        return LogLine(first_ts, _epoch(first_ts), stream, b"".join(parts) + b"\n")

    def flush(self) -> list[LogLine]:
        """Partial lines still held (the file ended inside them): as they are, no newline."""
        out = [LogLine(ts, _epoch(ts), stream, b"".join(parts)) for stream, (ts, parts) in self._pending.items()]
        self._pending.clear()
        return sorted(out, key=lambda line: line.when)


def render(line: LogLine, timestamps: bool) -> bytes:
    return (line.timestamp.encode() + b" " + line.text) if timestamps else line.text


def parse_lines(data: bytes) -> tuple[list[LogLine], LineJoiner]:
    """Every whole line of a file's content (the joiner keeps what is still partial)."""
    joiner = LineJoiner()
    out = []
    for raw in data.splitlines(keepends=True):
        line = joiner.feed(raw)
        if line is not None:
            out.append(line)
    return out, joiner


def select(lines: list[LogLine], tail: int | None, since: float | None) -> list[LogLine]:
    """kubelet's order: sinceTime filters, then tailLines counts from the end."""
    if since is not None:
        lines = [line for line in lines if line.when >= since]
    if tail is not None:
        lines = lines[len(lines) - tail:] if tail else []
    return lines


async def read_log(path: str, *, follow: bool = False, tail: int | None = None, since: float | None = None,
                   timestamps: bool = False,
                   running: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[bytes]:
    """The log file's lines as kubelet serves them; following ends once `running`
    says the container stopped and everything it wrote has been read."""
    def read_all() -> tuple[bytes, int]:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return b"", 0
        # Only whole records; a record being written is read on the next look.
        end = data.rfind(b"\n") + 1
        return data[:end], end

    data, offset = await asyncio.to_thread(read_all)
    lines, joiner = parse_lines(data)
    for line in select(lines, tail, since):
        yield render(line, timestamps)
    if not follow:
        for line in select(joiner.flush(), None, since):
            yield render(line, timestamps)
        return
    loop = asyncio.get_running_loop()
    next_check = loop.time() + RUNNING_CHECK_PERIOD
    buffered = b""
    while True:
        chunk = await asyncio.to_thread(_read_from, path, offset)
        if chunk:
            offset += len(chunk)
            buffered += chunk
            end = buffered.rfind(b"\n") + 1
            whole, buffered = buffered[:end], buffered[end:]
            for raw in whole.splitlines(keepends=True):
                line = joiner.feed(raw)
                if line is not None and (since is None or line.when >= since):
                    yield render(line, timestamps)
            continue
        if running is not None and loop.time() >= next_check:
            next_check = loop.time() + RUNNING_CHECK_PERIOD
            if not await running():
                # One more look: the last lines may have landed after the previous read.
                if await asyncio.to_thread(_read_from, path, offset):
                    continue
                for line in joiner.flush():
                    yield render(line, timestamps)
                return
        await asyncio.sleep(FOLLOW_POLL)


def _read_from(path: str, offset: int) -> bytes:
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size <= offset:
                return b""
            f.seek(offset)
            return f.read(CHUNK)
    except FileNotFoundError:
        return b""
