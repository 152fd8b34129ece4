"""Kubernetes timestamps: parsing RFC 3339 strings and printing ages the way
kubectl does (apimachinery's duration.HumanDuration)."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

# Go's RFC3339/RFC3339Nano layouts. datetime.fromisoformat rejects Go's 9-digit
# (nanosecond) fractions, so parse by hand and keep microseconds.
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)


def parse_time(value: object) -> datetime | None:
    """An aware datetime for an RFC 3339 string, None for anything else
    (missing, wrong type, malformed) — printers show that as `<unknown>`."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if not isinstance(value, str):
        return None
    m = _RFC3339.match(value.strip())
    if not m:
        return None
    year, month, day, hour, minute, second, frac, z, sign, oh, om = m.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    if z:
        tz = timezone.utc
    else:
        offset = timedelta(hours=int(oh), minutes=int(om))
        tz = timezone(offset if sign == "+" else -offset)
    try:
        return datetime(int(year), int(month), int(day), int(hour), int(minute),
                        int(second), micros, tzinfo=tz)
    except ValueError:
        return None


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with second precision, as metav1.Time serialises."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(when: datetime) -> str:
    """RFC 3339 with microseconds, as metav1.MicroTime serialises."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def human_duration(d: timedelta | float) -> str:
    """~2-3 significant figures: 5s, 119s, 2m3s, 10m, 3h4m, 9h, 2d3h, 5d, 2y30d, 9y."""
    total = d.total_seconds() if isinstance(d, timedelta) else float(d)
    seconds = int(total)  # truncates toward zero like Go's int(d.Seconds())
    # A clock up to ~2 s ahead of ours still reads as "now".
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: object, now: datetime | None = None) -> str:
    """Age of a timestamp for a table cell; `<unknown>` when there is none."""
    when = parse_time(value)
    if when is None:
        return "<unknown>"
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return human_duration(now - when)
