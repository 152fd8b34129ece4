from decimal import Decimal

import pytest

from kubeling.quantity import cpu_millis, format_quantity, parse_quantity, to_bytes


@pytest.mark.parametrize("text,value", [
    ("1", Decimal(1)), ("500m", Decimal("0.5")), ("1.5", Decimal("1.5")), ("2k", Decimal(2000)),
    ("1Ki", Decimal(1024)), ("1Mi", Decimal(1024**2)), ("3Gi", Decimal(3 * 1024**3)),
    ("1Ei", Decimal(1024**6)), ("1M", Decimal(10**6)), ("1E", Decimal(10**18)), ("1e3", Decimal(1000)),
    ("1E-3", Decimal("0.001")), ("100u", Decimal("0.0001")), ("5n", Decimal("0.000000005")),
    (".5", Decimal("0.5")), ("-1", Decimal(-1)), (2, Decimal(2)), (0.25, Decimal("0.25")),
])
def test_parse(text, value) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "1 Gi", "1Gb", "1..2", ".", "1e", "1Kii", "1e99999", True, None,
                                 [1], {}, float("nan"), "1" * 200, 10**60])
def test_parse_rejects(bad) -> None:
    with pytest.raises(ValueError):
        parse_quantity(bad)


def test_units() -> None:
    assert cpu_millis("250m") == 250
    assert cpu_millis("1.0001") == 1001  # rounds up, like MilliValue
    assert cpu_millis(2) == 2000
    assert to_bytes("128Mi") == 128 * 1024 * 1024
    assert to_bytes("1.5k") == 1500


@pytest.mark.parametrize("value,binary,text", [
    (Decimal("1.5"), False, "1500m"), (Decimal(1000), False, "1k"), (Decimal(1500), False, "1500"),
    (Decimal(1024**3), True, "1Gi"), (Decimal(int(1.5 * 1024**3)), True, "1536Mi"), (Decimal(100), True, "100"),
    (Decimal("0.0001"), False, "100u"), (Decimal(0), False, "0"), (Decimal(-2000), False, "-2k"),
])
def test_format(value, binary, text) -> None:
    assert format_quantity(value, binary=binary) == text
    assert parse_quantity(text) == value
