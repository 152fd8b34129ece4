"""Printing timelines: text for people (the slowest step marked), JSON for scripts,
and one self-contained HTML page drawing each step as a bar (no network, no assets)."""
from __future__ import annotations

import html
import json
from typing import Any

from .timeline import Step, Timeline

SLOWEST = "◀ slowest"


def _secs(v: float | None) -> str:
    return "" if v is None else f"{v:.3f}s"


def _mark(s: Step) -> str:
    if s.check:
        return "?"
    if s.done:
        return "✓"
    return "✗" if s.warning else "…"


def text(tl: Timeline, color: bool = False) -> str:
    bold, red, dim, off = ("\033[1m", "\033[31m", "\033[2m", "\033[0m") if color else ("", "", "", "")
    head = f"pod {tl.namespace}/{tl.pod} ({tl.uid or 'no uid'}) — {tl.kind}"
    if tl.total is not None:
        head += f", {tl.total:.3f}s" + ("" if tl.complete else " so far")
    lines = [head, f"  {'SINCE':>9}  {'TOOK':>8}    STEP"]
    width = max((len(s.title) for s in tl.steps), default=10)
    for s in tl.steps:
        since = f"+{s.offset:.3f}s" if s.offset is not None else ""
        what = s.detail
        if s.check:
            what = s.check
        elif not s.done:
            what = f"waiting for {s.waiting}" if s.waiting else "not yet"
        row = f"  {since:>9}  {_secs(s.duration):>8}  {_mark(s)} {s.title:<{width}}  {what}".rstrip()
        if s.slowest:
            row = f"{bold}{row}  {SLOWEST}{off}"
        elif s.warning:
            row = f"{red}{row}{off}"
        elif not s.done and not s.check:
            row = f"{dim}{row}{off}"
        lines.append(row)
    return "\n".join(lines)


def as_json(timelines: list[Timeline]) -> str:
    return json.dumps({"timelines": [t.as_dict() for t in timelines]}, indent=2)


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:18px;margin:0 0 4px} h2{font-size:15px;margin:24px 0 8px}
.meta{color:#666;margin-bottom:12px}
table{border-collapse:collapse;width:100%}
td{padding:3px 6px;vertical-align:middle;border-bottom:1px solid #eee;white-space:nowrap}
td.title{width:28%} td.num{text-align:right;font-variant-numeric:tabular-nums;width:6%}
td.track{width:40%;position:relative}
.lane{position:relative;height:16px;background:#f4f6f8;border-radius:3px}
.bar{position:absolute;top:2px;height:12px;min-width:3px;border-radius:2px;background:#3b82f6}
.bar.slowest{background:#e4572e} .bar.waiting{background:repeating-linear-gradient(45deg,#bbb 0 4px,#ddd 4px 8px)}
.bar.warning{background:repeating-linear-gradient(45deg,#e4572e 0 4px,#f7c5b8 4px 8px)}
.bar.check{background:#10b981}
td.detail{color:#555;white-space:normal}
tr.slowest td.title{font-weight:600;color:#b33a1b}
"""


def _bars(tl: Timeline) -> list[tuple[Step, float, float, str]]:
    """(step, left %, width %, classes) for every step; undone steps draw a hatched
    bar from the last happened step to the end, checks a short mark at the end."""
    total = tl.total or 0.0
    scale = total if total > 0 else 1.0
    out = []
    for s in tl.steps:
        if s.offset is not None and s.duration is not None:
            left = (s.offset - s.duration) / scale * 100
            width = s.duration / scale * 100
            cls = "bar slowest" if s.slowest else "bar"
        elif s.check:
            left, width, cls = 98.0, 2.0, "bar check"
        else:
            left, width = 90.0, 10.0
            cls = "bar warning" if s.warning else "bar waiting"
        out.append((s, max(0.0, min(left, 100.0)), max(0.0, min(width, 100.0 - left)), cls))
    return out


def _table(tl: Timeline) -> str:
    rows = []
    for s, left, width, cls in _bars(tl):
        what = s.check or (s.detail if s.done else (f"waiting for {s.waiting}" if s.waiting else "not yet"))
        rows.append(
            f'<tr class="{"slowest" if s.slowest else ""}">'
            f'<td class="title">{html.escape(_mark(s))} {html.escape(s.title)}</td>'
            f'<td class="num">{"+" + format(s.offset, ".3f") + "s" if s.offset is not None else ""}</td>'
            f'<td class="num">{_secs(s.duration)}</td>'
            f'<td class="track"><div class="lane"><div class="{cls}" data-step="{html.escape(s.key)}" '
            f'title="{html.escape(s.title)}" style="left:{left:.3f}%;width:{width:.3f}%"></div></div></td>'
            f'<td class="detail">{html.escape(what)}</td></tr>')
    total = f"{tl.total:.3f}s" if tl.total is not None else "—"
    return (f'<section data-timeline="{tl.kind}"><h2>{html.escape(tl.kind.capitalize())}: {total}'
            f'{"" if tl.complete else " so far"}</h2><table>'
            '<tr><td class="title"><b>step</b></td><td class="num"><b>since</b></td><td class="num"><b>took</b></td>'
            '<td class="track"></td><td class="detail"></td></tr>' + "".join(rows) + "</table></section>")


def as_html(timelines: list[Timeline], generated: str = "") -> str:
    first: Any = timelines[0] if timelines else None
    name = f"{first.namespace}/{first.pod}" if first else "pod"
    body = "".join(_table(t) for t in timelines)
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
            f"<title>kubeling trace pod {html.escape(name)}</title><style>{_CSS}</style></head><body>"
            f"<h1>kubeling trace pod {html.escape(name)}</h1>"
            f'<div class="meta">uid {html.escape(first.uid if first else "")} {html.escape(generated)}</div>'
            f"{body}</body></html>\n")
