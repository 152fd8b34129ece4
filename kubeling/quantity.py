"""Kubernetes resource quantities ("500m", "1Gi", "1e3"), as apimachinery's resource.Quantity.

Values are exact Decimals. Magnitudes beyond 1e40 are refused: nothing real is that
large, and it keeps later integer conversions cheap whatever a client sends.
"""
from __future__ import annotations

import functools
import re
from decimal import ROUND_CEILING, Decimal, InvalidOperation

QUANTITY_REGEX = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_SHAPE = re.compile(QUANTITY_REGEX)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_MAX_ADJUSTED_EXPONENT = 40


def parse_quantity(s: str | int | float) -> Decimal:
    """Parse a quantity; raise ValueError if it is not one."""
    if isinstance(s, bool):
        raise ValueError("quantity must be a string or a number")
    if isinstance(s, int):
        value = Decimal(s)
    elif isinstance(s, float):
        if s != s or s in (float("inf"), float("-inf")):
            raise ValueError("quantity must be finite")
        value = Decimal(repr(s))
    elif isinstance(s, str):
        value = _parse_text(s)
    else:
        raise ValueError("quantity must be a string or a number")
    if value != 0 and value.adjusted() > _MAX_ADJUSTED_EXPONENT:
        raise ValueError("quantity is too large")
    return value


# Every component parses the same few strings ("100m", "64Mi") over and over: the apiserver
# for each pod's QoS class, the scheduler for each node it weighs. Decimals are immutable.
@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Decimal:
    m = _SHAPE.match(text)
    if not m or len(text) > 100:
        raise ValueError(f"quantities must match the regular expression '{QUANTITY_REGEX}'")
    number, suffix = m.group(1), m.group(2)
    if not _NUMBER.match(number):
        raise ValueError("unable to parse quantity's number")
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError("unable to parse quantity's number") from exc
    if suffix in _BINARY:
        return base * (Decimal(1024) ** _BINARY[suffix])
    if suffix in _DECIMAL:
        return base.scaleb(_DECIMAL[suffix])
    if suffix[:1] in ("e", "E"):
        exp = suffix[1:]
        if not re.fullmatch(r"[-+]?\d{1,3}", exp):
            raise ValueError("unable to parse quantity's suffix")
        return base.scaleb(int(exp))
    raise ValueError("unable to parse quantity's suffix")


def cpu_millis(q: str | int | float | Decimal) -> int:
    """CPU in millicores, rounded up as Kubernetes' MilliValue does."""
    value = q if isinstance(q, Decimal) else parse_quantity(q)
    return int((value * 1000).to_integral_value(rounding=ROUND_CEILING))


def to_bytes(q: str | int | float | Decimal) -> int:
    """A byte count (memory, storage), rounded up as Kubernetes' Value does."""
    value = q if isinstance(q, Decimal) else parse_quantity(q)
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def is_binary(text: str) -> bool:
    """Whether a quantity string uses a power-of-two suffix (its canonical form keeps one)."""
    return isinstance(text, str) and text[-2:] in _BINARY


def format_quantity(value: Decimal | int | str, binary: bool = False) -> str:
    """Canonical text as Quantity.String(): "1500m", "1k", "1536Mi", "100u"."""
    if not isinstance(value, Decimal):
        value = parse_quantity(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    value = abs(value)
    integral = value == value.to_integral_value()
    if binary and integral and value >= 1024:
        n, power = int(value), 0
        while power < 6 and n % 1024 == 0:
            n //= 1024
            power += 1
        suffix = [k for k, p in _BINARY.items() if p == power]
        return f"{sign}{n}{suffix[0] if suffix else ''}"
    if integral:
        n, power = int(value), 0
        while power < 18 and n % 1000 == 0:
            n //= 1000
            power += 3
        suffix = [k for k, p in _DECIMAL.items() if p == power]
        return f"{sign}{n}{suffix[0]}"
    for suffix, scale in (("m", 3), ("u", 6), ("n", 9)):
        scaled = value.scaleb(scale)
        if scaled == scaled.to_integral_value():
            return f"{sign}{int(scaled)}{suffix}"
    # Below a nano, Kubernetes rounds up to the next nano.
    return f"{sign}{int(value.scaleb(9).to_integral_value(rounding=ROUND_CEILING))}n"
