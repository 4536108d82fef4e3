"""Schedule parsing, normalization and due times, against hand-computed dates and brute force."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from zoneinfo import ZoneInfo

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
        ("CRON_TZ=Europe/Berlin every 30s", r"so it takes no time zone. Remove 'CRON_TZ=Europe/Berlin'"),
        ("CRON_TZ= 0 2 * * *", r"the time zone after 'CRON_TZ=' is empty"),
        ("CRON_TZ=Europe/Berlin", r"no schedule follows the time zone 'Europe/Berlin'"),
        ("CRON_TZ=Europe/Berlin   ", r"no schedule follows the time zone 'Europe/Berlin'"),
        ("CRON_TZ=Mars/Olympus 0 2 * * *", r"time zone 'Mars/Olympus' is not in the IANA time zone database"),
        ("TZ=../etc/passwd daily", r"time zone '../etc/passwd' is not in the IANA time zone database"),
        ("CRON_TZ=europe/berlin daily", r"IANA names are case-sensitive, so write 'Europe/Berlin'"),
        ("CRON_TZ=Europe/Berlin 0 24 * * *", r"hour 24 is out of range 0-23"),
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


# -- constructors -------------------------------------------------------------------------------

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


@pytest.mark.parametrize(
    ("schedule", "normalized"),
    [
        (Schedule.hourly(), "hourly"),
        (Schedule.hourly(minute=0), "hourly"),
        (Schedule.hourly(minute=30), "30 * * * *"),
        (Schedule.daily(), "daily"),
        (Schedule.daily(hour=0, minute=0), "daily"),
        (Schedule.daily(hour=2), "0 2 * * *"),
        (Schedule.daily(hour=23, minute=59), "59 23 * * *"),
        (Schedule.weekly(day="monday"), "0 0 * * 1"),
        (Schedule.weekly(day="Sun", hour=6, minute=5), "5 6 * * 0"),
        (Schedule.weekly(day=" SATURDAY ", hour=12), "0 12 * * 6"),
        (Schedule.weekly(day=0), "0 0 * * 0"),
        (Schedule.every(minutes=15), "every 15m"),
        (Schedule.every(minutes=15, timezone="UTC"), "every 15m"),
        (Schedule.cron("0 2 * * *"), "0 2 * * *"),
        (Schedule.hourly(timezone="Asia/Kolkata"), "CRON_TZ=Asia/Kolkata hourly"),
        (Schedule.daily(timezone=BERLIN), "CRON_TZ=Europe/Berlin daily"),
        (Schedule.daily(hour=2, timezone=BERLIN), "CRON_TZ=Europe/Berlin 0 2 * * *"),
        (Schedule.daily(hour=2, timezone=ZoneInfo(BERLIN)), "CRON_TZ=Europe/Berlin 0 2 * * *"),
        (Schedule.weekly(day="fri", hour=9, timezone=NEW_YORK), "CRON_TZ=America/New_York 0 9 * * 5"),
        (Schedule.cron("0 2 * * MON", timezone=BERLIN), "CRON_TZ=Europe/Berlin 0 2 * * mon"),
        # UTC and its aliases store no time zone.
        (Schedule.daily(hour=2, timezone="UTC"), "0 2 * * *"),
        (Schedule.cron("0 2 * * *", timezone="Etc/UTC"), "0 2 * * *"),
    ],
)
def test_constructor_normalized_spec(schedule: Schedule, normalized: str) -> None:
    assert str(schedule) == normalized


def test_constructor_equalities() -> None:
    assert Schedule.weekly(day="sunday") == Schedule("@weekly")
    assert Schedule.weekly(day=1) == Schedule.weekly(day="Monday") == Schedule.weekly(day="mon")
    assert Schedule.daily(hour=2, timezone="UTC") == Schedule.daily(hour=2)
    assert Schedule.daily(hour=2, timezone=BERLIN) != Schedule.daily(hour=2)
    assert Schedule.daily(hour=2, timezone=BERLIN) != Schedule.daily(hour=2, timezone=NEW_YORK)


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        (Schedule.hourly(minute=15), utc(2024, 1, 31, 10, 15), utc(2024, 1, 31, 11, 15)),
        (Schedule.hourly(minute=15), utc(2024, 1, 31, 10, 14, 59), utc(2024, 1, 31, 10, 15)),
        (Schedule.daily(hour=2), utc(2024, 1, 31, 2, 0), utc(2024, 2, 1, 2, 0)),
        (Schedule.daily(hour=2, minute=30), utc(2024, 1, 31, 1, 0), utc(2024, 1, 31, 2, 30)),
        (Schedule.every(minutes=15), utc(2024, 1, 31, 10, 7), utc(2024, 1, 31, 10, 15)),
        (Schedule.every(hours=1, timezone="UTC"), utc(2024, 1, 31, 10, 7), utc(2024, 1, 31, 11, 0)),
        # 2024-02-02 is a Friday.
        (Schedule.weekly(day="friday", hour=9), utc(2024, 2, 2, 9, 0), utc(2024, 2, 9, 9, 0)),
        (Schedule.weekly(day="friday", hour=9), utc(2024, 2, 2, 8, 59), utc(2024, 2, 2, 9, 0)),
        (Schedule.weekly(day=1), utc(2024, 2, 2, 0, 0), utc(2024, 2, 5, 0, 0)),
        (Schedule.cron("0 2 * * *"), utc(2024, 1, 31, 3, 0), utc(2024, 2, 1, 2, 0)),
        # Asia/Kolkata is UTC+05:30 all year.
        (Schedule.hourly(timezone="Asia/Kolkata"), utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 0, 30)),
        (Schedule.daily(hour=9, timezone="Asia/Kolkata"), utc(2024, 1, 1, 0, 0), utc(2024, 1, 1, 3, 30)),
        # Berlin is UTC+1 (CET) in winter and UTC+2 (CEST) in summer.
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 1, 14, 12, 0), utc(2024, 1, 15, 1, 0)),
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 7, 14, 12, 0), utc(2024, 7, 15, 0, 0)),
        # The Berlin day starts at 23:00 UTC in winter, so a Monday in Berlin starts on Sunday in UTC.
        (Schedule.weekly(day="mon", hour=0, timezone=BERLIN), utc(2024, 2, 2, 0, 0), utc(2024, 2, 4, 23, 0)),
        (Schedule.cron("0 9 * * 1-5", timezone=NEW_YORK), utc(2024, 2, 2, 15, 0), utc(2024, 2, 5, 14, 0)),
    ],
)
def test_constructor_next_after(schedule: Schedule, after: dt.datetime, expected: dt.datetime) -> None:
    result = schedule.next_after(after)

    assert result == expected
    assert result.tzinfo == UTC


# -- time zones and DST -------------------------------------------------------------------------
#
# Europe/Berlin in 2024: on March 31 at 01:00 UTC the clocks jump from 02:00 CET to 03:00 CEST,
# and on October 27 at 01:00 UTC they go back from 03:00 CEST to 02:00 CET.


@pytest.mark.parametrize(
    ("schedule", "after", "expected"),
    [
        # Gap: 02:00 and 02:30 do not exist, so they run at the first valid instant, 03:00 CEST.
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 3, 30, 12, 0), utc(2024, 3, 31, 1, 0)),
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 3, 31, 0, 59, 59, 999_999), utc(2024, 3, 31, 1, 0)),
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 3, 31, 1, 0), utc(2024, 4, 1, 0, 0)),
        (Schedule.daily(hour=2, minute=30, timezone=BERLIN), utc(2024, 3, 31, 0, 0), utc(2024, 3, 31, 1, 0)),
        (Schedule.daily(hour=3, timezone=BERLIN), utc(2024, 3, 31, 0, 0), utc(2024, 3, 31, 1, 0)),
        (
            Schedule.weekly(day="sunday", hour=2, minute=30, timezone=BERLIN),
            utc(2024, 3, 24, 12, 0),
            utc(2024, 3, 31, 1, 0),
        ),
        # Overlap: 02:00 runs at its first occurrence (CEST) only, not again at 02:00 CET.
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 10, 26, 12, 0), utc(2024, 10, 27, 0, 0)),
        (Schedule.daily(hour=2, timezone=BERLIN), utc(2024, 10, 27, 0, 0), utc(2024, 10, 28, 1, 0)),
        (Schedule.daily(hour=2, minute=30, timezone=BERLIN), utc(2024, 10, 27, 0, 29), utc(2024, 10, 27, 0, 30)),
        (Schedule.daily(hour=2, minute=30, timezone=BERLIN), utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)),
        (Schedule.cron("*/15 2 * * *", timezone=BERLIN), utc(2024, 10, 27, 0, 50), utc(2024, 10, 28, 1, 0)),
        # From inside the second occurrence (02:10 CET), the 02:15 to 02:45 that already ran are skipped.
        (Schedule.cron("*/15 2 * * *", timezone=BERLIN), utc(2024, 10, 27, 1, 10), utc(2024, 10, 28, 1, 0)),
        (Schedule.daily(hour=3, timezone=BERLIN), utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 2, 0)),
        # A schedule that runs every hour follows elapsed time: it skips the gap ...
        (Schedule.hourly(timezone=BERLIN), utc(2024, 3, 31, 0, 0), utc(2024, 3, 31, 1, 0)),
        (Schedule.hourly(minute=30, timezone=BERLIN), utc(2024, 3, 31, 0, 30), utc(2024, 3, 31, 1, 30)),
        # ... and runs at both occurrences of the overlap.
        (Schedule.hourly(timezone=BERLIN), utc(2024, 10, 27, 0, 0), utc(2024, 10, 27, 1, 0)),
        (Schedule.cron("*/15 * * * *", timezone=BERLIN), utc(2024, 10, 27, 0, 50), utc(2024, 10, 27, 1, 0)),
        (Schedule.cron("*/15 * * * *", timezone=BERLIN), utc(2024, 10, 27, 1, 50), utc(2024, 10, 27, 2, 0)),
        # America/New_York: the 2024 gap is 02:00-03:00 on March 10, the overlap 01:00-02:00 on November 3.
        (Schedule.daily(hour=2, timezone=NEW_YORK), utc(2024, 3, 9, 12, 0), utc(2024, 3, 10, 7, 0)),
        (Schedule.daily(hour=2, timezone=NEW_YORK), utc(2024, 3, 10, 7, 0), utc(2024, 3, 11, 6, 0)),
        (Schedule.daily(hour=1, minute=30, timezone=NEW_YORK), utc(2024, 11, 2, 12, 0), utc(2024, 11, 3, 5, 30)),
        (Schedule.daily(hour=1, minute=30, timezone=NEW_YORK), utc(2024, 11, 3, 5, 30), utc(2024, 11, 4, 6, 30)),
        # Australia/Lord_Howe shifts by 30 minutes: 02:00-02:30 is skipped on 2024-10-06.
        (
            Schedule.daily(hour=2, minute=15, timezone="Australia/Lord_Howe"),
            utc(2024, 10, 5, 0, 0),
            utc(2024, 10, 5, 15, 30),
        ),
        # Pacific/Apia skipped all of 2011-12-30 when it moved from UTC-10 to UTC+14.
        (Schedule.cron("0 12 30 12 *", timezone="Pacific/Apia"), utc(2011, 12, 29, 0, 0), utc(2011, 12, 30, 10, 0)),
    ],
)
def test_time_zone_dst_changes(schedule: Schedule, after: dt.datetime, expected: dt.datetime) -> None:
    result = schedule.next_after(after)

    assert result == expected
    assert result.tzinfo == UTC


def test_time_zone_next_after_accepts_local_input() -> None:
    second_two_thirty = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo(BERLIN))

    assert Schedule.hourly(timezone=BERLIN).next_after(second_two_thirty) == utc(2024, 10, 27, 2, 0)
    assert Schedule.daily(hour=2, timezone=BERLIN).next_after(second_two_thirty) == utc(2024, 10, 28, 1, 0)


WallPredicate = Callable[[dt.datetime], bool]
MINUTE = dt.timedelta(minutes=1)


def _expected_zoned_due_times(
    zone: ZoneInfo, matches: WallPredicate, every_hour: bool, start: dt.datetime, end: dt.datetime
) -> list[dt.datetime]:
    """List the UTC minutes in (start, end) that are due by the rules of the module docstring.

    A minute is due when its wall-clock time matches and is not a repeat, or when it ends a DST
    gap that skipped a matching wall-clock time. A schedule that runs every hour is due at each
    minute whose wall-clock time matches.
    """
    due = []
    minute = start + MINUTE
    while minute < end:
        local = minute.astimezone(zone)
        wall = local.replace(tzinfo=None, fold=0)
        if every_hour:
            is_due = matches(wall)
        else:
            skipped = _skipped_walls((minute - MINUTE).astimezone(zone).replace(tzinfo=None, fold=0), wall)
            is_due = (matches(wall) and local.fold == 0) or any(matches(skip) for skip in skipped)
        if is_due:
            due.append(minute)
        minute += MINUTE
    return due


def _skipped_walls(previous: dt.datetime, current: dt.datetime) -> list[dt.datetime]:
    walls = []
    wall = previous + MINUTE
    while wall < current:
        walls.append(wall)
        wall += MINUTE
    return walls


# A week around each 2024 DST change of the zone.
DST_WEEKS = {
    BERLIN: [utc(2024, 3, 27), utc(2024, 10, 23)],
    NEW_YORK: [utc(2024, 3, 7), utc(2024, 10, 31)],
    "Australia/Lord_Howe": [utc(2024, 4, 3), utc(2024, 10, 2)],
    # Santiago changes at local midnight: 00:00 back to 23:00 in April, 00:00 to 01:00 in September.
    "America/Santiago": [utc(2024, 4, 3), utc(2024, 9, 4)],
}

ZONED_BRUTE_FORCE_CASES: list[tuple[str, Schedule, WallPredicate, bool]] = [
    (BERLIN, Schedule.daily(hour=2, timezone=BERLIN), lambda w: (w.hour, w.minute) == (2, 0), False),
    (BERLIN, Schedule.daily(hour=2, minute=30, timezone=BERLIN), lambda w: (w.hour, w.minute) == (2, 30), False),
    (BERLIN, Schedule.cron("*/15 2-3 * * *", timezone=BERLIN), lambda w: w.minute % 15 == 0 and w.hour in (2, 3), False),
    (
        BERLIN,
        Schedule.weekly(day="sunday", hour=2, minute=45, timezone=BERLIN),
        lambda w: (w.hour, w.minute) == (2, 45) and w.weekday() == 6,
        False,
    ),
    (BERLIN, Schedule.hourly(timezone=BERLIN), lambda w: w.minute == 0, True),
    (BERLIN, Schedule.cron("*/20 * * * *", timezone=BERLIN), lambda w: w.minute % 20 == 0, True),
    (NEW_YORK, Schedule.daily(hour=1, minute=30, timezone=NEW_YORK), lambda w: (w.hour, w.minute) == (1, 30), False),
    (NEW_YORK, Schedule.daily(hour=2, minute=10, timezone=NEW_YORK), lambda w: (w.hour, w.minute) == (2, 10), False),
    (
        "Australia/Lord_Howe",
        Schedule.cron("*/10 1-2 * * *", timezone="Australia/Lord_Howe"),
        lambda w: w.minute % 10 == 0 and w.hour in (1, 2),
        False,
    ),
    ("America/Santiago", Schedule.daily(timezone="America/Santiago"), lambda w: (w.hour, w.minute) == (0, 0), False),
    (
        "America/Santiago",
        Schedule.cron("30 23 * * *", timezone="America/Santiago"),
        lambda w: (w.hour, w.minute) == (23, 30),
        False,
    ),
]


@pytest.mark.parametrize(
    ("zone_name", "schedule", "matches", "every_hour"),
    ZONED_BRUTE_FORCE_CASES,
    ids=[str(case[1]) for case in ZONED_BRUTE_FORCE_CASES],
)
def test_time_zone_matches_brute_force(
    zone_name: str, schedule: Schedule, matches: WallPredicate, every_hour: bool
) -> None:
    zone = ZoneInfo(zone_name)
    for start in DST_WEEKS[zone_name]:
        end = start + dt.timedelta(days=7)
        expected = _expected_zoned_due_times(zone, matches, every_hour, start, end)
        assert expected, f"The predicate of {schedule} matches nothing from {start}; the case tests nothing."

        # next_after from the start and the middle of every minute up to the last due time.
        minute = start
        while minute < expected[-1]:
            following = next(due for due in expected if due > minute)
            assert schedule.next_after(minute) == following, f"{schedule} after {minute.isoformat()}"
            assert schedule.next_after(minute + dt.timedelta(seconds=30)) == following, f"{schedule} after {minute}+30s"
            minute += MINUTE


def test_time_zone_due_times_strictly_increase() -> None:
    for schedule in (Schedule.hourly(timezone=BERLIN), Schedule.daily(hour=2, timezone=BERLIN)):
        due = utc(2024, 3, 29)
        seen = []
        while due < utc(2024, 4, 2):
            due = schedule.next_after(due)
            seen.append(due)

        assert seen == sorted(set(seen)), str(schedule)


# -- round trips --------------------------------------------------------------------------------

ROUND_TRIP_SCHEDULES = [
    Schedule("hourly"),
    Schedule("daily"),
    Schedule("every 30s"),
    Schedule("every 90m"),
    Schedule("@weekly"),
    Schedule("*/15 9-17 * * mon-fri"),
    Schedule.hourly(minute=5),
    Schedule.daily(hour=2),
    Schedule.weekly(day="friday", hour=18, minute=30),
    Schedule.every(minutes=15),
    Schedule.cron("0 0 1 jan,jul *"),
    Schedule.hourly(timezone="Asia/Kolkata"),
    Schedule.daily(timezone=BERLIN),
    Schedule.daily(hour=2, timezone=BERLIN),
    Schedule.weekly(day="mon", hour=9, timezone=NEW_YORK),
    Schedule.cron("*/10 1-2 * * *", timezone="Australia/Lord_Howe"),
    Schedule.cron("0 3 * * *", timezone="America/Argentina/Buenos_Aires"),
]


@pytest.mark.parametrize("schedule", ROUND_TRIP_SCHEDULES, ids=[str(schedule) for schedule in ROUND_TRIP_SCHEDULES])
def test_round_trip_through_string(schedule: Schedule) -> None:
    parsed = Schedule(str(schedule))

    assert parsed == schedule
    assert str(parsed) == str(schedule)
    assert parse_schedule(str(schedule)) == schedule
    assert parsed.timezone == schedule.timezone
    assert parsed.next_after(utc(2024, 3, 30, 23, 0)) == schedule.next_after(utc(2024, 3, 30, 23, 0))


@pytest.mark.parametrize(
    ("spec", "normalized"),
    [
        ("CRON_TZ=Europe/Berlin 0 2 * * *", "CRON_TZ=Europe/Berlin 0 2 * * *"),
        ("  cron_tz=Europe/Berlin   0 2 * * SUN ", "CRON_TZ=Europe/Berlin 0 2 * * sun"),
        ("TZ=Europe/Berlin @daily", "CRON_TZ=Europe/Berlin daily"),
        ("CRON_TZ=Europe/Berlin Hourly", "CRON_TZ=Europe/Berlin hourly"),
        ("CRON_TZ=UTC 0 2 * * *", "0 2 * * *"),
        ("CRON_TZ=Etc/UTC every 30s", "every 30s"),
    ],
)
def test_time_zone_spec_normalized(spec: str, normalized: str) -> None:
    assert str(Schedule(spec)) == normalized


def test_timezone_property() -> None:
    assert Schedule.daily(hour=2, timezone=BERLIN).timezone == BERLIN
    assert Schedule.daily(hour=2).timezone is None
    assert Schedule.daily(hour=2, timezone="UTC").timezone is None
    assert Schedule.every(minutes=5).timezone is None


# -- invalid arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schedule.daily(hour=24), "Invalid hour 24: expected a whole number from 0 to 23."),
        (lambda: Schedule.daily(hour=-1), "Invalid hour -1: expected a whole number from 0 to 23."),
        (lambda: Schedule.daily(hour=2.5), "Invalid hour 2.5: expected a whole number from 0 to 23."),
        (lambda: Schedule.daily(hour="2"), "Invalid hour '2': expected a whole number from 0 to 23."),
        (lambda: Schedule.daily(hour=True), "Invalid hour True: expected a whole number from 0 to 23."),
        (lambda: Schedule.daily(minute=60), "Invalid minute 60: expected a whole number from 0 to 59."),
        (lambda: Schedule.hourly(minute=-1), "Invalid minute -1: expected a whole number from 0 to 59."),
        (lambda: Schedule.weekly(day="monday", hour=24), "Invalid hour 24: expected a whole number from 0 to 23."),
        (
            lambda: Schedule.weekly(day="funday"),
            (
                "Invalid day 'funday': expected a weekday name such as 'monday' or 'mon', "
                "or a number from 0 (Sunday) to 6 (Saturday)."
            ),
        ),
        (lambda: Schedule.weekly(day=7), "Invalid day 7: expected a weekday name"),
        (lambda: Schedule.weekly(day=-1), "Invalid day -1: expected a weekday name"),
        (lambda: Schedule.weekly(day=None), "Invalid day None: expected a weekday name"),  # type: ignore[arg-type]
        (
            lambda: Schedule.daily(hour=2, timezone="Europe/Berlyn"),
            (
                "Invalid timezone: time zone 'Europe/Berlyn' is not in the IANA time zone database. "
                "Use a name such as 'Europe/Berlin' or 'America/New_York'."
            ),
        ),
        (
            lambda: Schedule.daily(timezone="europe/berlin"),
            (
                "Invalid timezone: time zone 'europe/berlin' is not found. "
                "IANA names are case-sensitive, so write 'Europe/Berlin'."
            ),
        ),
        (lambda: Schedule.hourly(timezone=""), "Invalid timezone: time zone '' is not in the IANA time zone database"),
        (
            lambda: Schedule.cron("0 2 * * *", timezone="/etc/localtime"),
            "Invalid timezone: time zone '/etc/localtime' is not in the IANA time zone database",
        ),
        (
            lambda: Schedule.weekly(day="mon", timezone=dt.timezone.utc),  # type: ignore[arg-type]
            "Invalid timezone datetime.timezone.utc: expected an IANA time zone name such as 'Europe/Berlin'",
        ),
        (
            lambda: Schedule.every(minutes=15, timezone=BERLIN),
            (
                "Invalid timezone 'Europe/Berlin' for Schedule.every: an interval is aligned to the Unix epoch "
                "and is due at the same instants in every time zone. Remove timezone="
            ),
        ),
        (
            lambda: Schedule.every(minutes=15, timezone="Nowhere/City"),
            "Invalid timezone: time zone 'Nowhere/City' is not in the IANA time zone database",
        ),
    ],
)
def test_invalid_constructor_arguments(make: Callable[[], Schedule], message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        make()
