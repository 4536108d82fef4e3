"""Schedule parsing, normalization and due times, against hand-computed dates and brute force."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest

from raise_jupyter.errors import DefinitionError
from raise_jupyter.schedule import Schedule, parse_schedule

UTC = dt.timezone.utc


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("hourly", utc(2024, 1, 31, 10, 0), utc(2024, 1, 31, 11, 0)),
        ("hourly", utc(2024, 1, 31, 10, 59, 59, 999_999), utc(2024, 1, 31, 11, 0)),
        ("hourly", utc(2024, 12, 31, 23, 30), utc(2025, 1, 1, 0, 0)),
        ("daily", utc(2024, 2, 28, 23, 59), utc(2024, 2, 29, 0, 0)),
        ("daily", utc(2024, 2, 29, 0, 0), utc(2024, 3, 1, 0, 0)),
        ("every 30s", utc(2024, 1, 31, 10, 0), utc(2024, 1, 31, 10, 0, 30)),
        ("every 30s", utc(2024, 1, 31, 10, 0, 29, 500_000), utc(2024, 1, 31, 10, 0, 30)),
        ("every 5m", utc(2024, 1, 31, 10, 2, 7), utc(2024, 1, 31, 10, 5)),
        # Intervals are aligned to the Unix epoch, so every 2h is due at even UTC hours.
        ("every 2h", utc(2024, 1, 31, 11, 0), utc(2024, 1, 31, 12, 0)),
        ("every 1d", utc(2024, 1, 31, 11, 0), utc(2024, 2, 1, 0, 0)),
        ("*/15 * * * *", utc(2024, 1, 31, 10, 14, 59), utc(2024, 1, 31, 10, 15)),
        ("*/15 * * * *", utc(2024, 1, 31, 10, 45), utc(2024, 1, 31, 11, 0)),
        ("5/20 * * * *", utc(2024, 1, 31, 10, 26), utc(2024, 1, 31, 10, 45)),
        ("0 8-18/4 * * *", utc(2024, 1, 31, 12, 1), utc(2024, 1, 31, 16, 0)),
        ("0 8-18/4 * * *", utc(2024, 1, 31, 16, 0), utc(2024, 2, 1, 8, 0)),
        # Day 31 skips the months that lack it.
        ("0 0 31 * *", utc(2024, 1, 31, 0, 0), utc(2024, 3, 31, 0, 0)),
        ("0 0 31 * *", utc(2024, 4, 1, 0, 0), utc(2024, 5, 31, 0, 0)),
        ("0 12 29 2 *", utc(2023, 3, 1, 0, 0), utc(2024, 2, 29, 12, 0)),
        ("0 12 29 2 *", utc(2024, 2, 29, 12, 0), utc(2028, 2, 29, 12, 0)),
        ("0 0 1 1 *", utc(2024, 6, 1, 0, 0), utc(2025, 1, 1, 0, 0)),
        ("0 0 1 jan,jul *", utc(2024, 1, 1, 0, 0), utc(2024, 7, 1, 0, 0)),
        # 2024-02-02 is a Friday.
        ("30 9 * * 1-5", utc(2024, 2, 2, 10, 0), utc(2024, 2, 5, 9, 30)),
        ("30 9 * * mon-fri", utc(2024, 2, 2, 9, 29), utc(2024, 2, 2, 9, 30)),
        ("0 0 * * 0", utc(2024, 2, 1, 0, 0), utc(2024, 2, 4, 0, 0)),
        ("0 0 * * 7", utc(2024, 2, 1, 0, 0), utc(2024, 2, 4, 0, 0)),
        ("0 0 * * 5-7", utc(2024, 2, 3, 0, 0), utc(2024, 2, 4, 0, 0)),
        # Both day fields restricted: the 13th or any Friday.
        ("0 0 13 * 5", utc(2024, 2, 1, 0, 0), utc(2024, 2, 2, 0, 0)),
        ("0 0 13 * 5", utc(2024, 2, 10, 0, 0), utc(2024, 2, 13, 0, 0)),
        # A day field that starts with "*" is unrestricted: days 1, 11, 21, 31 that are Mondays.
        ("0 0 */10 * 1", utc(2024, 1, 2, 0, 0), utc(2024, 3, 11, 0, 0)),
        ("@weekly", utc(2024, 2, 1, 0, 0), utc(2024, 2, 4, 0, 0)),
        ("@monthly", utc(2024, 2, 1, 0, 0), utc(2024, 3, 1, 0, 0)),
    ],
)
def test_next_after_table(spec: str, after: dt.datetime, expected: dt.datetime) -> None:
    result = Schedule(spec).next_after(after)

    assert result == expected
    assert result.tzinfo == UTC


Predicate = Callable[[dt.datetime], bool]


def _cron_weekday(t: dt.datetime) -> int:
    return (t.weekday() + 1) % 7


BRUTE_FORCE_CASES: list[tuple[str, Predicate]] = [
    ("*/20 8-10 * * 1-5", lambda t: t.minute % 20 == 0 and 8 <= t.hour <= 10 and 1 <= _cron_weekday(t) <= 5),
    ("0,30 */6 * * *", lambda t: t.minute in (0, 30) and t.hour % 6 == 0),
    ("15 3 1,15 * *", lambda t: t.minute == 15 and t.hour == 3 and t.day in (1, 15)),
    ("0 0 1-7 * 1", lambda t: t.minute == 0 and t.hour == 0 and (t.day <= 7 or _cron_weekday(t) == 1)),
    ("0 12 * 3 sun", lambda t: t.minute == 0 and t.hour == 12 and t.month == 3 and _cron_weekday(t) == 0),
    ("59 23 28-31 2 *", lambda t: t.minute == 59 and t.hour == 23 and t.month == 2 and t.day >= 28),
]


@pytest.mark.parametrize(("spec", "matches"), BRUTE_FORCE_CASES, ids=[case[0] for case in BRUTE_FORCE_CASES])
def test_cron_matches_brute_force(spec: str, matches: Predicate) -> None:
    schedule = Schedule(spec)
    start = utc(2024, 1, 25, 0, 0)
    end = utc(2024, 4, 5, 0, 0)
    expected = []
    minute = start + dt.timedelta(minutes=1)
    while minute < end:
        if matches(minute):
            expected.append(minute)
        minute += dt.timedelta(minutes=1)

    actual = []
    due = schedule.next_after(start)
    while due < end:
        actual.append(due)
        due = schedule.next_after(due)

    assert expected, f"The predicate of {spec!r} matches nothing in the range; the case tests nothing."
    assert actual == expected


def test_next_after_converts_input_to_utc() -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    aware = dt.datetime(2024, 1, 31, 12, 30, tzinfo=plus_two)
    naive = dt.datetime(2024, 1, 31, 10, 30)

    assert Schedule("hourly").next_after(aware) == utc(2024, 1, 31, 11, 0)
    assert Schedule("hourly").next_after(naive) == utc(2024, 1, 31, 11, 0)
    assert Schedule("every 7m").next_after(aware) == Schedule("every 7m").next_after(naive)


def test_next_after_is_strictly_later() -> None:
    for spec in ("hourly", "daily", "every 1s", "every 90s", "* * * * *"):
        schedule = Schedule(spec)
        due = schedule.next_after(utc(2024, 1, 31, 10, 0))

        assert schedule.next_after(due) > due, spec


@pytest.mark.parametrize(
    ("spec", "normalized"),
    [
        ("hourly", "hourly"),
        (" Hourly ", "hourly"),
        ("@hourly", "hourly"),
        ("@daily", "daily"),
        ("@midnight", "daily"),
        ("@weekly", "0 0 * * 0"),
        ("every 30s", "every 30s"),
        ("every 30 seconds", "every 30s"),
        ("Every  90 sec", "every 90s"),
        ("every 60s", "every 1m"),
        ("every 60 minutes", "every 1h"),
        ("every 24h", "every 1d"),
        ("every 2 hours", "every 2h"),
        ("*/15   9-17 * * MON-FRI", "*/15 9-17 * * mon-fri"),
    ],
)
def test_schedule_normalized_spec(spec: str, normalized: str) -> None:
    assert str(Schedule(spec)) == normalized
    assert str(parse_schedule(spec)) == normalized


def test_schedule_constructors_and_equality() -> None:
    assert Schedule.hourly() == Schedule("hourly")
    assert Schedule.daily() == Schedule("@daily")
    assert Schedule.every(seconds=90) == Schedule("every 90s")
    assert Schedule.every(minutes=1.5) == Schedule("every 90s")
    assert Schedule.every(hours=2, minutes=30) == Schedule("every 150m")
    assert Schedule.cron("0 9 * * 1-5") == Schedule("0 9 * * 1-5")
    assert Schedule("every 5m").interval == dt.timedelta(minutes=5)
    assert Schedule("hourly").interval is None
    assert repr(Schedule("every 5m")) == "Schedule('every 5m')"

    schedule = Schedule("daily")
    assert parse_schedule(schedule) is schedule
    assert hash(Schedule("every 60s")) == hash(Schedule("every 1m"))


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("61 * * * *", r"minute 61 is out of range 0-59"),
        ("* 24 * * *", r"hour 24 is out of range 0-23"),
        ("* * 0 * *", r"day-of-month 0 is out of range 1-31"),
        ("* * * 13 *", r"month 13 is out of range 1-12"),
        ("* * * * 8", r"day-of-week 8 is out of range 0-7"),
        ("* * * *", r"five fields .* this one has 4"),
        ("* * * * * *", r"this one has 6"),
        ("5-1 * * * *", r"range '5-1' in the minute field runs backwards"),
        ("*/0 * * * *", r"step '0' in the minute field must be a positive whole number"),
        ("*/x * * * *", r"step 'x' in the minute field"),
        ("1,,2 * * * *", r"the minute field '1,,2' has an empty list item"),
        ("x * * * *", r"'x' in the minute field is not a number"),
        ("* * * * funday", r"'funday' in the day-of-week field is not a number"),
        ("0 0 30 2 *", r"day-of-month 30 never occurs in month 2"),
        ("0 0 31 4,6 *", r"day-of-month 31 never occurs in month 4,6"),
        ("every 0s", r"at least 1 second"),
        ("every 1.5m", r"interval '1.5' is not a whole number"),
        ("every -5s", r"interval '-5' is not a whole number"),
        ("every 5 fortnights", r"unit 'fortnights' is not one of s, m, h or d"),
        ("every 400d", r"at most 366 days"),
        ("every", r"'every' and a number with a unit"),
        ("every 30", r"'every' and a number with a unit"),
        ("", r"the schedule is empty"),
        ("weekly", r"'weekly' in the minute field is not a number|five fields"),
    ],
)
def test_invalid_schedule_raises(spec: str, reason: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(f"Invalid schedule {spec!r}: ") + f".*{reason}") as error:
        parse_schedule(spec)

    assert "Use 'hourly', 'daily', 'every 30s'" in str(error.value)
    assert "five-field cron string" in str(error.value)


def test_invalid_schedule_types_and_constructors() -> None:
    with pytest.raises(DefinitionError, match=r"Invalid schedule 30: expected a string or a Schedule"):
        parse_schedule(30)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match=r"Invalid interval of 0.5 seconds"):
        Schedule.every(seconds=0.5)
    with pytest.raises(DefinitionError, match=r"Invalid schedule 'every 0s': the interval must be at least 1 second"):
        Schedule.every()
    with pytest.raises(DefinitionError, match=r"Invalid cron string 'hourly': expected five fields"):
        Schedule.cron("hourly")


@pytest.mark.parametrize(("spec", "expected"), [("every hour", "every 1h"), ("every minute", "every 1m"), ("every day", "every 1d")])
def test_interval_without_number(spec: str, expected: str) -> None:
    assert str(Schedule(spec)) == expected


def test_unit_word_without_number_rejected() -> None:
    with pytest.raises(DefinitionError, match="an interval must be written as 'every' and a number with a unit"):
        Schedule("every fortnight")


def test_non_ascii_digits_rejected() -> None:
    with pytest.raises(DefinitionError, match="is not a number"):
        Schedule("² * * * *")
