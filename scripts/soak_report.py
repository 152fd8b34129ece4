"""The judging half of `scripts/bench soak`: what counts as growth or a leftover, and how the
verdicts print. Pure functions of the samples (no processes, no cluster), so they are unit-tested."""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

GROWTH_LIMIT_PCT = 10.0
# A handful of descriptors come and go with in-flight requests (a pooled connection, a probe's
# socket); below this a change is noise, not a leak, whatever its percentage on a small count.
FD_SLACK = 3
# TCP states the kernel expires on its own within a fixed time: a finished connection, not a leak.
CLOSING_STATES = ("TIME_WAIT", "CLOSE")


@dataclass
class Check:
    item: str
    start: float
    end: float
    passed: bool
    detail: str = ""

    @property
    def growth_pct(self) -> float | None:
        return growth_pct(self.start, self.end)


def growth_pct(start: float, end: float) -> float | None:
    """(end - start) / start in %, None when there is no start to compare with."""
    if start <= 0:
        return None
    return (end - start) * 100.0 / start


def warmup_cycles(cycles: int, pct: float = 5.0, minimum: int = 3) -> int:
    """Cycles run before the start sample: caches, pools and lazily imported code fill up in the
    first ones, so growth is judged from after them. Never all of the run."""
    return max(0, min(cycles - 1, max(minimum, round(cycles * pct / 100))))


def ends_of(series: list[dict[str, int]], name: str, share: float = 0.2) -> tuple[float, float]:
    """A component's level at the start and at the end of the measured cycles: the median of the
    samples in the first and in the last `share` of the series (at least one each). Memory that
    saws up and down with a periodic task (etcd's compaction and snapshot every minute, a garbage
    collection) is then judged by its level, not by where in its tooth one sample fell."""
    values = [s[name] for s in series if name in s]
    if not values:
        raise ValueError(f"no samples of {name}")
    k = max(1, round(len(values) * share))
    return _median(values[:k]), _median(values[-k:])


def _median(values: list[int]) -> float:
    v = sorted(values)
    mid = len(v) // 2
    return float(v[mid]) if len(v) % 2 else (v[mid - 1] + v[mid]) / 2


def judge_growth(item: str, start: float, end: float, limit_pct: float = GROWTH_LIMIT_PCT,
                 slack: float = 0) -> Check:
    """Passes when the value grew by less than limit_pct % (or by at most `slack` in absolute terms)."""
    g = growth_pct(start, end)
    ok = end - start <= slack or (g is not None and g < limit_pct)
    return Check(item, start, end, ok, f"limit {limit_pct:g}%" + (f" or +{slack:g}" if slack else ""))


def judge_leftover(item: str, before: float, after: float, detail: str = "") -> Check:
    """Passes when nothing more is there after the run than before it."""
    return Check(item, before, after, after <= before, detail)


def rule_lines(iptables_save: str) -> Counter[str]:
    """The rules and chains of an iptables-save dump, without its comments, COMMIT lines and packet
    counters, so two dumps compare by what they program."""
    out: Counter[str] = Counter()
    table = ""
    for line in iptables_save.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
            continue
        if line.startswith(":"):
            line = line.split()[0]  # ":CHAIN POLICY [pkts:bytes]" -> ":CHAIN"
        out[f"{table} {line}"] += 1
    return out


def rules_added(before: str, after: str) -> list[str]:
    """Rules and chains in `after` that `before` did not have (as many times as they were added)."""
    return sorted((rule_lines(after) - rule_lines(before)).elements())


def conntrack_live(conntrack_list: str) -> int:
    """Entries of `conntrack -L` output that are not a finished TCP connection waiting to expire."""
    n = 0
    for line in conntrack_list.splitlines():
        w = line.split()
        if not w or w[0] not in ("tcp", "udp", "icmp", "sctp", "udplite", "dccp", "gre", "unknown"):
            continue
        if w[0] == "tcp" and len(w) > 3 and w[3] in CLOSING_STATES:
            continue
        n += 1
    return n


def render(checks: list[Check]) -> list[str]:
    """One line per check: item, start -> end, growth, PASS/FAIL."""
    width = max((len(c.item) for c in checks), default=0)
    lines = []
    for c in checks:
        g = c.growth_pct
        gtxt = f"{g:+.1f}%" if g is not None else "   n/a"
        lines.append(f"{'PASS' if c.passed else 'FAIL'}  {c.item:<{width}}  {_num(c.start):>10} -> "
                     f"{_num(c.end):<10} {gtxt:>8}  {c.detail}".rstrip())
    return lines


def summary(checks: list[Check]) -> dict:
    return {"passed": all(c.passed for c in checks),
            "failed": [c.item for c in checks if not c.passed],
            "checks": [{**asdict(c), "growth_pct": None if c.growth_pct is None else round(c.growth_pct, 1)}
                       for c in checks]}


def _num(v: float) -> str:
    return f"{v:.1f}" if isinstance(v, float) and not v.is_integer() else f"{int(v)}"
