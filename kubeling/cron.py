"""Cron schedules as Kubernetes' CronJob controller reads them (robfig/cron's standard
parser): five fields `minute hour day-of-month month day-of-week`, `*`, `?`, lists,
ranges, steps, month and weekday names, and the descriptors @yearly/@annually,
@monthly, @weekly, @daily/@midnight, @hourly. Like robfig, when either day field is
`*` or `?` both must match; otherwise either may.

Times are computed on the wall clock of a time zone (zoneinfo), so `0 9 * * *` in
Europe/Berlin fires at 09:00 Berlin time whatever UTC says.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

MONTHS = {m: i + 1 for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}
DAYS = {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
               "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
               "@hourly": "0 * * * *"}
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, MONTHS), ("day of week", 0, 6, DAYS))
MAX_YEARS = 5  # robfig gives up after five years without a match (e.g. 30 Feb)


class CronError(ValueError):
    pass


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    days_star: bool
    weekdays_star: bool

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_star or self.weekdays_star:
            return dom and dow
        return dom or dow

    def next(self, after: datetime, tz: tzinfo = timezone.utc) -> datetime | None:
        """The first activation strictly after `after` (aware), or None within five years."""
        t = after.astimezone(tz).replace(second=0, microsecond=0, tzinfo=None) + timedelta(minutes=1)
        limit = t.year + MAX_YEARS
        while t.year <= limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t.replace(tzinfo=tz).astimezone(timezone.utc)
        return None


def _number(word: str, names: dict[str, int], what: str) -> int:
    low = word.lower()
    if low in names:
        return names[low]
    if not word.isdigit():
        raise CronError(f"failed to parse int from {word}: strconv.Atoi: parsing {word!r}: invalid syntax")
    return int(word)


def _field(text: str, what: str, lo: int, hi: int, names: dict[str, int]) -> tuple[frozenset[int], bool]:
    values: set[int] = set()
    star = False
    for part in text.split(","):
        if not part:
            raise CronError(f"empty field in {what}: {text!r}")
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text or part.endswith("/"):
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"step of range should be a positive number: {part}")
            step = int(step_text)
        if rng in ("*", "?"):
            start, end = lo, hi
            star = star or not step_text
        else:
            first, dash, last = rng.partition("-")
            start = _number(first, names, what)
            end = _number(last, names, what) if dash else (hi if step_text else start)
            if start < lo:
                raise CronError(f"beginning of range ({start}) below minimum ({lo}): {part}")
            if end > hi:
                raise CronError(f"end of range ({end}) above maximum ({hi}): {part}")
            if start > end:
                raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {part}")
        values.update(range(start, end + 1, step))
    return frozenset(values), star


def parse(spec: str) -> Schedule:
    """Parse a schedule; CronError (a ValueError) with robfig's wording when it is bad.
    A `TZ=`/`CRON_TZ=` prefix is refused here: Kubernetes wants spec.timeZone instead."""
    if not isinstance(spec, str) or not spec.strip():
        raise CronError("empty spec string")
    text = spec.strip()
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise CronError("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    if text.startswith("@"):
        if text not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {text}")
        text = DESCRIPTORS[text]
    words = text.split()
    if len(words) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(words)}: {text}")
    parsed = [_field(w, what, lo, hi, names) for w, (what, lo, hi, names) in zip(words, _FIELDS)]
    return Schedule(parsed[0][0], parsed[1][0], parsed[2][0], parsed[3][0], parsed[4][0],
                    parsed[2][1], parsed[4][1])


def zone(name: str | None) -> tzinfo:
    """The time zone of spec.timeZone (None: the controller's local zone, UTC here)."""
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CronError(f"unknown time zone {name}") from exc
