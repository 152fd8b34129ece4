from datetime import datetime, timedelta, timezone

import pytest

from kubeling.timefmt import format_micro_time, format_time, human_duration, parse_time, since


@pytest.mark.parametrize("seconds,expected", [
    (-5, "<invalid>"),
    (-1.5, "0s"),
    (0, "0s"),
    (5, "5s"),
    (119, "119s"),
    (120, "2m"),
    (123, "2m3s"),
    (599, "9m59s"),
    (600, "10m"),
    (179 * 60 + 59, "179m"),
    (3 * 3600, "3h"),
    (3 * 3600 + 4 * 60 + 30, "3h4m"),
    (8 * 3600 + 59 * 60, "8h"),
    (47 * 3600, "47h"),
    (48 * 3600, "2d"),
    (2 * 86400 + 3 * 3600, "2d3h"),
    (7 * 86400 + 23 * 3600, "7d23h"),
    (8 * 86400, "8d"),
    (729 * 86400, "729d"),
    (730 * 86400, "2y"),
    (760 * 86400, "2y30d"),
    (8 * 365 * 86400 + 100 * 86400, "8y"),
])
def test_human_duration_matches_kubernetes(seconds, expected):
    assert human_duration(timedelta(seconds=seconds)) == expected
    assert human_duration(seconds) == expected


def test_parse_time_variants():
    utc = timezone.utc
    assert parse_time("2024-05-06T07:08:09Z") == datetime(2024, 5, 6, 7, 8, 9, tzinfo=utc)
    assert parse_time("2024-05-06T07:08:09.123456Z") == \
        datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=utc)
    assert parse_time("2024-05-06T07:08:09.5+02:00") == \
        datetime(2024, 5, 6, 5, 8, 9, 500000, tzinfo=utc)
    for bad in (None, "", "yesterday", 12, {"a": 1}, "2024-13-01T00:00:00Z"):
        assert parse_time(bad) is None


def test_format_round_trip():
    when = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=timezone.utc)
    assert format_time(when) == "2024-05-06T07:08:09Z"
    assert format_micro_time(when) == "2024-05-06T07:08:09.123456Z"
    assert parse_time(format_micro_time(when)) == when


def test_since():
    now = datetime(2024, 5, 6, 7, 10, 0, tzinfo=timezone.utc)
    assert since("2024-05-06T07:08:00Z", now) == "2m"
    assert since(None, now) == "<unknown>"
    assert since("garbage", now) == "<unknown>"
