"""Schedules of alerts, live tables and jobs: ``hourly``, ``daily``, ``every 30s`` and cron strings.

A schedule is evaluated in UTC unless it has a time zone. Fixed intervals are aligned to the Unix
epoch, so ``every 5m`` is due at :00, :05, :10 and so on, and every process computes the same due
times. Cron strings have the five fields ``minute hour day-of-month month day-of-week`` of Vixie
cron, with Sunday as day-of-week 0 (7 is Sunday too).

Time zones
----------
A ``CRON_TZ=<IANA name>`` prefix makes a schedule read its cron fields as wall-clock times in
that zone, so ``CRON_TZ=Europe/Berlin 0 2 * * *`` is due at 02:00 Berlin time in winter and in
summer. Google Cloud's Vertex AI and Dataplex schedules accept the same prefix. The constructors
(``Schedule.daily(hour=2, timezone="Europe/Berlin")`` and so on) write it, and ``next_after``
still returns UTC instants. Daylight saving time (DST) changes are handled like this:

- A wall-clock time that a DST gap skips (02:30 on the day Berlin moves from 02:00 to 03:00) is
  due once, at the first valid instant after the gap (03:00 CEST).
- A wall-clock time that a DST overlap repeats (02:30 on the day Berlin moves from 03:00 back
  to 02:00) is due once, at its first occurrence (02:30 CEST).
- A schedule that runs in every hour of the day, such as ``hourly`` or ``*/15 * * * *``, follows
  elapsed time instead. It skips the wall-clock times of a gap and runs at both occurrences in an
  overlap, so it neither pauses for an hour nor runs an extra catch-up time.

Fixed intervals take no time zone, because they are due at the same instants in every zone.
"""

from __future__ import annotations

import calendar
import datetime as dt
import numbers
import re
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple
from zoneinfo import ZoneInfo

from raise_jupyter.errors import DefinitionError

__all__ = ["Schedule", "parse_schedule"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_VALID_FORMS = (
    "Use 'hourly', 'daily', 'every 30s' (s, m, h or d) or a five-field cron string such as '*/15 * * * *', "
    "with a time zone prefix such as 'CRON_TZ=Europe/Berlin 0 2 * * *' for local times."
)

MIN_INTERVAL_S = 1
# A longer interval is better written as a cron string, which sets the day it runs on.
MAX_INTERVAL_S = 366 * 86_400

_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_UNIT_ALIASES = {
    **{name: "s" for name in ("s", "sec", "secs", "second", "seconds")},
    **{name: "m" for name in ("m", "min", "mins", "minute", "minutes")},
    **{name: "h" for name in ("h", "hr", "hrs", "hour", "hours")},
    **{name: "d" for name in ("d", "day", "days")},
}
_INTERVAL_PATTERN = re.compile(r"every\s+([-+0-9][^\sa-z]*)\s*([a-z]+)")

_SHORTHANDS = {
    "hourly": "hourly",
    "@hourly": "hourly",
    "daily": "daily",
    "@daily": "daily",
    "@midnight": "daily",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}
_SHORTHAND_CRON = {"hourly": "0 * * * *", "daily": "0 0 * * *"}

# Cron names are English, but calendar.month_abbr follows the locale.
_MONTH_ABBREVIATIONS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAMES = {name: number for number, name in enumerate(_MONTH_ABBREVIATIONS, start=1)}
_WEEKDAY_FULL_NAMES = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
_WEEKDAY_NAMES = {name[:3]: number for number, name in enumerate(_WEEKDAY_FULL_NAMES)}
# Schedule.weekly also accepts the full names.
_WEEKDAY_ARGUMENT_NAMES = {**_WEEKDAY_NAMES, **{name: number for number, name in enumerate(_WEEKDAY_FULL_NAMES)}}

# Each cron field: its name in messages, the allowed range and the names it accepts.
_FIELDS = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, _MONTH_NAMES),
    ("day-of-week", 0, 7, _WEEKDAY_NAMES),
)
# The rarest valid cron strings, such as Feb 29 or Feb 1 on a Monday, recur within about 12
# years, so the search for the next due time gives up only for invalid ones.
_MAX_SEARCH_YEARS = 50

# "CRON_TZ=" is the stored form, and "TZ=" is accepted as input, as Google Cloud schedules do.
_TIME_ZONE_PREFIX = "CRON_TZ="
_TIME_ZONE_PATTERN = re.compile(r"\s*(?:cron_tz|tz)=(\S*)(.*)", re.IGNORECASE | re.DOTALL)
# Etc/UTC and its links in tzdata. A schedule in one of them is stored without a time zone.
_UTC_KEYS = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "Etc/Universal", "Etc/Zulu", "UCT", "Universal", "Zulu"})
_ZONE_EXAMPLES = "'Europe/Berlin' or 'America/New_York'"


class _InvalidSpec(Exception):
    """Reason why a schedule string is invalid, which _parse turns into a DefinitionError."""


@dataclass(frozen=True)
class _CronFields:
    """The allowed values of the five cron fields, with Sunday as day-of-week 0."""

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    # Vixie cron treats a day field that starts with "*" (such as "*/2") as unrestricted. When
    # both day fields are restricted, a day matches if either field matches.
    days_restricted: bool
    weekdays_restricted: bool

    @property
    def every_hour(self) -> bool:
        """Whether every hour of the day matches, which makes a zoned schedule follow elapsed time."""
        return len(self.hours) == 24

    def matches_day(self, day: dt.date) -> bool:
        day_match = day.day in self.days
        weekday_match = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_match or weekday_match
        return day_match and weekday_match


class _ParsedSpec(NamedTuple):
    """A parsed schedule: exactly one of ``interval_s`` and ``cron`` is set."""

    spec: str
    interval_s: int | None
    cron: _CronFields | None
    zone: ZoneInfo | None


@dataclass(frozen=True)
class Schedule:
    """When a task is due, parsed from a spec such as ``"hourly"``, ``"every 5m"`` or ``"0 9 * * 1-5"``.

    ``Schedule(spec)`` parses and normalizes the spec, and raises DefinitionError if it is
    invalid. Two schedules are equal when their normalized specs are equal. ``str()`` returns
    the normalized spec, which the catalog stores, and ``Schedule(str(schedule)) == schedule``.
    A ``CRON_TZ=<IANA name>`` prefix sets the time zone of the cron fields. The module
    docstring describes how DST changes are handled.

    Examples
    --------
    >>> Schedule("every 90 seconds")
    Schedule('every 90s')
    >>> str(Schedule.cron("*/15  9-17 * * MON-FRI"))
    '*/15 9-17 * * mon-fri'
    >>> Schedule.daily(hour=2, timezone="Europe/Berlin")
    Schedule('CRON_TZ=Europe/Berlin 0 2 * * *')
    """

    spec: str
    _interval_s: int | None = field(init=False, repr=False, compare=False)
    _cron: _CronFields | None = field(init=False, repr=False, compare=False)
    _zone: ZoneInfo | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parsed = _parse(self.spec)
        object.__setattr__(self, "spec", parsed.spec)
        object.__setattr__(self, "_interval_s", parsed.interval_s)
        object.__setattr__(self, "_cron", parsed.cron)
        object.__setattr__(self, "_zone", parsed.zone)

    @classmethod
    def hourly(cls, *, minute: int = 0, timezone: str | ZoneInfo | None = None) -> Schedule:
        """Return the schedule due once an hour, at ``minute`` past the hour.

        Parameters
        ----------
        minute
            Minute past the hour, 0 to 59.
        timezone
            IANA time zone name, or None for UTC. It matters only for zones whose UTC offset
            is not a whole number of hours, such as ``"Asia/Kolkata"`` (UTC+05:30).

        Raises
        ------
        DefinitionError
            If ``minute`` is not a whole number from 0 to 59, or the time zone is unknown.

        Examples
        --------
        >>> Schedule.hourly()
        Schedule('hourly')
        >>> Schedule.hourly(minute=30)
        Schedule('30 * * * *')
        >>> Schedule.hourly(timezone="Asia/Kolkata").next_after(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
        datetime.datetime(2024, 1, 1, 0, 30, tzinfo=datetime.timezone.utc)
        """
        minute = _check_clock_value(minute, "minute", 59)
        body = "hourly" if minute == 0 else f"{minute} * * * *"
        return cls(_with_time_zone(body, timezone))

    @classmethod
    def daily(cls, *, hour: int = 0, minute: int = 0, timezone: str | ZoneInfo | None = None) -> Schedule:
        """Return the schedule due once a day, at ``hour:minute``.

        Parameters
        ----------
        hour
            Hour of the day, 0 to 23.
        minute
            Minute past the hour, 0 to 59.
        timezone
            IANA time zone name such as ``"Europe/Berlin"``, or None for UTC. The time of day
            is a wall-clock time in that zone. On the day a DST gap skips it, the schedule is
            due at the first valid instant after the gap. On the day a DST overlap repeats it,
            the schedule is due once, at its first occurrence.

        Raises
        ------
        DefinitionError
            If ``hour`` or ``minute`` is out of range, or the time zone is unknown.

        Examples
        --------
        >>> Schedule.daily()
        Schedule('daily')
        >>> berlin = Schedule.daily(hour=2, timezone="Europe/Berlin")
        >>> berlin.next_after(dt.datetime(2024, 1, 14, 12, tzinfo=dt.timezone.utc))  # 02:00 CET
        datetime.datetime(2024, 1, 15, 1, 0, tzinfo=datetime.timezone.utc)
        >>> berlin.next_after(dt.datetime(2024, 7, 14, 12, tzinfo=dt.timezone.utc))  # 02:00 CEST
        datetime.datetime(2024, 7, 15, 0, 0, tzinfo=datetime.timezone.utc)
        >>> berlin.next_after(dt.datetime(2024, 3, 30, 12, tzinfo=dt.timezone.utc))  # gap: 03:00 CEST
        datetime.datetime(2024, 3, 31, 1, 0, tzinfo=datetime.timezone.utc)
        """
        hour = _check_clock_value(hour, "hour", 23)
        minute = _check_clock_value(minute, "minute", 59)
        body = "daily" if (hour, minute) == (0, 0) else f"{minute} {hour} * * *"
        return cls(_with_time_zone(body, timezone))

    @classmethod
    def weekly(
        cls, *, day: str | int, hour: int = 0, minute: int = 0, timezone: str | ZoneInfo | None = None
    ) -> Schedule:
        """Return the schedule due once a week, on ``day`` at ``hour:minute``.

        Parameters
        ----------
        day
            Day of the week: a name such as ``"monday"`` or ``"mon"`` (any case), or a number
            from 0 to 6 in the cron convention, 0 = Sunday, 1 = Monday, ..., 6 = Saturday.
            This is not Python's ``date.weekday()``, where 0 is Monday.
        hour
            Hour of the day, 0 to 23.
        minute
            Minute past the hour, 0 to 59.
        timezone
            IANA time zone name, or None for UTC. The day and time are read in that zone, and
            DST changes are handled as in ``Schedule.daily``.

        Raises
        ------
        DefinitionError
            If ``day``, ``hour`` or ``minute`` is out of range, or the time zone is unknown.

        Examples
        --------
        >>> Schedule.weekly(day="monday", hour=6)
        Schedule('0 6 * * 1')
        >>> Schedule.weekly(day=0) == Schedule("@weekly")
        True
        """
        weekday = _weekday_number(day)
        hour = _check_clock_value(hour, "hour", 23)
        minute = _check_clock_value(minute, "minute", 59)
        return cls(_with_time_zone(f"{minute} {hour} * * {weekday}", timezone))

    @classmethod
    def every(
        cls,
        *,
        seconds: float = 0,
        minutes: float = 0,
        hours: float = 0,
        days: float = 0,
        timezone: str | ZoneInfo | None = None,
    ) -> Schedule:
        """Return a fixed-interval schedule of the sum of the arguments, a whole number of seconds.

        The interval is aligned to the Unix epoch, so it is due at the same instants in every
        time zone. ``timezone`` may therefore only be None or UTC.

        Raises
        ------
        DefinitionError
            If the sum is not a whole number of seconds from 1 second to 366 days, or
            ``timezone`` is another zone than UTC.

        Examples
        --------
        >>> Schedule.every(minutes=15)
        Schedule('every 15m')
        >>> Schedule.every(hours=1, minutes=30)
        Schedule('every 90m')
        """
        _check_interval_time_zone(timezone)
        total = seconds + minutes * 60 + hours * 3600 + days * 86_400
        if total != int(total):
            raise DefinitionError(f"Invalid interval of {total} seconds: use a whole number of seconds, at least 1.")
        return cls(f"every {int(total)}s")

    @classmethod
    def cron(cls, expression: str, *, timezone: str | ZoneInfo | None = None) -> Schedule:
        """Return the schedule of a five-field cron string, read in ``timezone`` or UTC.

        DST changes are handled as the module docstring describes.

        Raises
        ------
        DefinitionError
            If the cron string is invalid or the time zone is unknown.

        Examples
        --------
        >>> Schedule.cron("0 2 * * *")
        Schedule('0 2 * * *')
        >>> Schedule.cron("0 2 * * *", timezone="Europe/Berlin")
        Schedule('CRON_TZ=Europe/Berlin 0 2 * * *')
        """
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise DefinitionError(
                f"Invalid cron string {expression!r}: expected five fields "
                "(minute hour day-of-month month day-of-week), such as '0 9 * * 1-5'."
            )
        return cls(_with_time_zone(expression, timezone))

    @property
    def interval(self) -> dt.timedelta | None:
        """Interval of a fixed-interval schedule; None for hourly, daily and cron schedules."""
        return dt.timedelta(seconds=self._interval_s) if self._interval_s is not None else None

    @property
    def timezone(self) -> str | None:
        """IANA name of the time zone of the cron fields, or None for UTC and fixed intervals."""
        return self._zone.key if self._zone is not None else None

    def __str__(self) -> str:
        return self.spec

    def __repr__(self) -> str:
        return f"Schedule({self.spec!r})"

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """Return the first due time strictly after ``t``, as an aware UTC datetime.

        A naive ``t`` is taken as UTC, like the timestamps that SQLite returns.
        """
        t = _to_utc(t)
        if self._interval_s is not None:
            return _next_interval(self._interval_s, t)
        assert self._cron is not None
        if self._zone is None:
            return _next_cron(self._cron, t, self.spec)
        return _next_zoned_cron(self._cron, self._zone, t, self.spec)


def parse_schedule(value: str | Schedule) -> Schedule:
    """Parse a schedule spec, or return ``value`` if it already is a Schedule.

    Raises
    ------
    DefinitionError
        If the spec is not ``hourly``, ``daily``, ``every N<unit>`` or a valid cron string,
        the first two or the last after an optional ``CRON_TZ=<IANA name>`` prefix.

    Examples
    --------
    >>> parse_schedule("CRON_TZ=Europe/Berlin  0 2 * * SUN")
    Schedule('CRON_TZ=Europe/Berlin 0 2 * * sun')
    """
    if isinstance(value, Schedule):
        return value
    if not isinstance(value, str):
        raise DefinitionError(f"Invalid schedule {value!r}: expected a string or a Schedule. {_VALID_FORMS}")
    return Schedule(value)


# -- constructor arguments ----------------------------------------------------------------------


def _check_clock_value(value: object, name: str, high: int) -> int:
    """Return ``value`` as an int, or raise DefinitionError unless it is a whole number from 0 to ``high``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= high:
        raise DefinitionError(f"Invalid {name} {value!r}: expected a whole number from 0 to {high}.")
    return int(value)


def _weekday_number(day: object) -> int:
    """Return the cron day-of-week (0 = Sunday) of a weekday name or number."""
    if isinstance(day, str) and day.strip().lower() in _WEEKDAY_ARGUMENT_NAMES:
        return _WEEKDAY_ARGUMENT_NAMES[day.strip().lower()]
    if not isinstance(day, bool) and isinstance(day, numbers.Integral) and 0 <= day <= 6:
        return int(day)
    raise DefinitionError(
        f"Invalid day {day!r}: expected a weekday name such as 'monday' or 'mon', "
        "or a number from 0 (Sunday) to 6 (Saturday)."
    )


def _time_zone_key(timezone: object) -> str | None:
    """Return the IANA name of a ``timezone=`` argument, or raise DefinitionError if it is unknown."""
    if timezone is None:
        return None
    if isinstance(timezone, ZoneInfo) and timezone.key is not None:
        return timezone.key
    if not isinstance(timezone, str):
        raise DefinitionError(
            f"Invalid timezone {timezone!r}: expected an IANA time zone name such as {_ZONE_EXAMPLES}, or None for UTC."
        )
    try:
        _load_zone(timezone)
    except _InvalidSpec as reason:
        raise DefinitionError(f"Invalid timezone: {reason}.") from None
    return timezone


def _with_time_zone(body: str, timezone: object) -> str:
    """Return the spec of ``body`` with the time zone prefix of ``timezone``, if any."""
    key = _time_zone_key(timezone)
    return body if key is None else f"{_TIME_ZONE_PREFIX}{key} {body}"


def _check_interval_time_zone(timezone: object) -> None:
    key = _time_zone_key(timezone)
    if key is not None and key not in _UTC_KEYS:
        raise DefinitionError(
            f"Invalid timezone {key!r} for Schedule.every: an interval is aligned to the Unix epoch and is due "
            "at the same instants in every time zone. Remove timezone=, or use Schedule.daily, Schedule.weekly "
            "or Schedule.cron with timezone= to run at local times."
        )


# -- parsing ------------------------------------------------------------------------------------


def _parse(value: object) -> _ParsedSpec:
    if not isinstance(value, str):
        raise DefinitionError(f"Invalid schedule {value!r}: expected a string. {_VALID_FORMS}")
    try:
        return _parse_text(value)
    except _InvalidSpec as reason:
        raise DefinitionError(f"Invalid schedule {value!r}: {reason}. {_VALID_FORMS}") from None


def _parse_text(value: str) -> _ParsedSpec:
    key, body = _split_time_zone(value)
    spec, interval_s, cron = _parse_body(body)
    if key is None or key in _UTC_KEYS:
        return _ParsedSpec(spec, interval_s, cron, None)

    zone = _load_zone(key)
    if interval_s is not None:
        raise _InvalidSpec(
            f"an interval such as {spec!r} is due at the same instants in every time zone, so it takes no "
            f"time zone. Remove '{_TIME_ZONE_PREFIX}{key}', or use a cron string to run at local times"
        )
    return _ParsedSpec(f"{_TIME_ZONE_PREFIX}{key} {spec}", None, cron, zone)


def _split_time_zone(value: str) -> tuple[str | None, str]:
    """Split ``CRON_TZ=<name> <schedule>`` into the name, with its case kept, and the schedule."""
    match = _TIME_ZONE_PATTERN.fullmatch(value)
    if match is None:
        return None, value
    key, body = match.groups()
    if not key:
        raise _InvalidSpec(f"the time zone after '{_TIME_ZONE_PREFIX}' is empty. Write a name such as {_ZONE_EXAMPLES}")
    if not body.strip():
        example = f"{_TIME_ZONE_PREFIX}{key} 0 2 * * *"
        raise _InvalidSpec(f"no schedule follows the time zone {key!r}. Write one after it, such as {example!r}")
    return key, body


def _load_zone(key: str) -> ZoneInfo:
    try:
        return ZoneInfo(key)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        # ValueError: a key that is not a relative path, such as "" or "/etc/localtime".
        raise _InvalidSpec(_unknown_zone_reason(key)) from None


def _unknown_zone_reason(key: str) -> str:
    names = zoneinfo.available_timezones()
    if not names:
        return (
            f"time zone {key!r} is not found because this system has no IANA time zone database. "
            "Install the tzdata package"
        )
    same_but_case = sorted(name for name in names if name.lower() == key.lower())
    if same_but_case:
        return f"time zone {key!r} is not found. IANA names are case-sensitive, so write {same_but_case[0]!r}"
    return f"time zone {key!r} is not in the IANA time zone database. Use a name such as {_ZONE_EXAMPLES}"


def _parse_body(value: str) -> tuple[str, int | None, _CronFields | None]:
    """Return the normalized spec, the interval in seconds (or None) and the cron fields (or None)."""
    text = " ".join(value.lower().split())
    if not text:
        raise _InvalidSpec("the schedule is empty")

    spec = _SHORTHANDS.get(text, text)
    if spec.startswith("every"):
        seconds = _parse_interval(spec)
        return _interval_spec(seconds), seconds, None

    cron_text = _SHORTHAND_CRON.get(spec, spec)
    return spec, None, _parse_cron(cron_text)


def _parse_interval(text: str) -> int:
    bare_unit = text.removeprefix("every").strip()
    if bare_unit in _UNIT_ALIASES:
        text = f"every 1{bare_unit}"  # "every hour" is every 1 hour
    match = _INTERVAL_PATTERN.fullmatch(text)
    if match is None:
        raise _InvalidSpec("an interval must be written as 'every' and a number with a unit, such as 'every 30s'")
    number, unit = match.groups()
    if unit not in _UNIT_ALIASES:
        raise _InvalidSpec(f"unit {unit!r} is not one of s, m, h or d")
    if not (number.isascii() and number.isdigit()):
        raise _InvalidSpec(f"interval {number!r} is not a whole number")

    seconds = int(number) * _UNIT_SECONDS[_UNIT_ALIASES[unit]]
    if seconds < MIN_INTERVAL_S:
        raise _InvalidSpec(f"the interval must be at least {MIN_INTERVAL_S} second")
    if seconds > MAX_INTERVAL_S:
        raise _InvalidSpec(f"the interval must be at most {MAX_INTERVAL_S // 86_400} days; use a cron string for rarer runs")
    return seconds


def _interval_spec(seconds: int) -> str:
    """Write an interval in the largest unit that divides it, so equal intervals compare equal."""
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_SECONDS[unit] == 0:
            return f"every {seconds // _UNIT_SECONDS[unit]}{unit}"
    return f"every {seconds}s"


def _parse_cron(text: str) -> _CronFields:
    parts = text.split(" ")
    if len(parts) != 5:
        raise _InvalidSpec(
            f"a cron string has five fields (minute hour day-of-month month day-of-week), this one has {len(parts)}"
        )

    values = [_parse_field(part, *spec) for part, spec in zip(parts, _FIELDS)]
    minutes, hours, days, months, weekdays = values
    weekdays = {0 if day == 7 else day for day in weekdays}
    fields = _CronFields(
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        weekdays=frozenset(weekdays),
        days_restricted=not parts[2].startswith("*"),
        weekdays_restricted=not parts[4].startswith("*"),
    )
    _check_day_exists(fields)
    return fields


def _parse_field(text: str, name: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise _InvalidSpec(f"the {name} field {text!r} has an empty list item")
        values.update(_parse_item(item, name, low, high, names))
    return values


def _parse_item(item: str, name: str, low: int, high: int, names: dict[str, int]) -> range:
    """Parse ``*``, ``N``, ``N-M`` or either of those with ``/STEP``."""
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
            raise _InvalidSpec(f"step {step_text!r} in the {name} field must be a positive whole number")
        step = int(step_text)

    if base == "*":
        return range(low, high + 1, step)

    start_text, dash, end_text = base.partition("-")
    start = _parse_value(start_text, name, low, high, names)
    if dash:
        end = _parse_value(end_text, name, low, high, names)
    else:
        # "N/STEP" means from N to the end of the range, as in Vixie cron.
        end = high if slash else start
    if end < start:
        raise _InvalidSpec(f"range {base!r} in the {name} field runs backwards; write the smaller value first")
    return range(start, end + 1, step)


def _parse_value(text: str, name: str, low: int, high: int, names: dict[str, int]) -> int:
    if text in names:
        return names[text]
    if not (text.isascii() and text.isdigit()):
        raise _InvalidSpec(f"{text!r} in the {name} field is not a number")
    value = int(text)
    if not low <= value <= high:
        raise _InvalidSpec(f"{name} {value} is out of range {low}-{high}")
    return value


def _check_day_exists(fields: _CronFields) -> None:
    """Raise if the day-of-month field never matches in the allowed months, such as Feb 30."""
    if fields.days_restricted and fields.weekdays_restricted:
        return  # Any day of the allowed weekdays matches.
    # Feb has 29 days in leap years.
    longest = {month: calendar.monthrange(2000, month)[1] for month in fields.months}
    if any(day <= longest[month] for month in fields.months for day in fields.days):
        return
    days = ",".join(str(day) for day in sorted(fields.days))
    months = ",".join(str(month) for month in sorted(fields.months))
    raise _InvalidSpec(f"day-of-month {days} never occurs in month {months}")


# -- due times ----------------------------------------------------------------------------------


def _to_utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc)


def _next_interval(interval_s: int, t: dt.datetime) -> dt.datetime:
    interval_us = interval_s * 1_000_000
    elapsed = t - _EPOCH
    elapsed_us = (elapsed.days * 86_400 + elapsed.seconds) * 1_000_000 + elapsed.microseconds
    slots = elapsed_us // interval_us + 1
    return _EPOCH + dt.timedelta(microseconds=slots * interval_us)


def _next_cron(fields: _CronFields, t: dt.datetime, spec: str) -> dt.datetime:
    """Return the first matching minute after ``t``, an aware UTC or a naive wall-clock datetime."""
    candidate = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    last_year = candidate.year + _MAX_SEARCH_YEARS
    while candidate.year <= last_year:
        if candidate.month not in fields.months:
            candidate = _start_of_next_month(candidate)
            continue
        if not fields.matches_day(candidate.date()):
            candidate = _start_of_next_day(candidate)
            continue

        hour = _first_at_or_after(fields.hours, candidate.hour)
        if hour is None:
            candidate = _start_of_next_day(candidate)
            continue
        if hour != candidate.hour:
            candidate = candidate.replace(hour=hour, minute=0)

        minute = _first_at_or_after(fields.minutes, candidate.minute)
        if minute is None:
            candidate = candidate.replace(minute=0) + dt.timedelta(hours=1)
            continue
        return candidate.replace(minute=minute)

    # Unreachable for schedules that pass _check_day_exists.
    raise RuntimeError(f"Schedule {spec!r} has no due time within {_MAX_SEARCH_YEARS} years after {t.isoformat()}.")


def _first_at_or_after(values: tuple[int, ...], start: int) -> int | None:
    return next((value for value in values if value >= start), None)


def _start_of_next_day(t: dt.datetime) -> dt.datetime:
    return t.replace(hour=0, minute=0) + dt.timedelta(days=1)


def _start_of_next_month(t: dt.datetime) -> dt.datetime:
    if t.month == 12:
        return t.replace(year=t.year + 1, month=1, day=1, hour=0, minute=0)
    return t.replace(month=t.month + 1, day=1, hour=0, minute=0)


# -- due times in a time zone -------------------------------------------------------------------
#
# The search runs over naive wall-clock times in the zone and maps each matching wall-clock time
# to UTC instants. Each mapping below gives instants that never decrease as the wall-clock time
# grows, so the result is the instant of the first wall-clock time, after that of t, whose
# instant is after t.


def _next_zoned_cron(fields: _CronFields, zone: ZoneInfo, t: dt.datetime, spec: str) -> dt.datetime:
    """Return the first due time after UTC ``t`` of cron fields read as wall-clock times in ``zone``."""
    wall = _wall_time(t, zone)
    if not fields.every_hour:
        return _first_due_after(fields, wall, t, spec, lambda w: _first_occurrence_or_gap_end(w, zone))

    first = _first_due_after(fields, wall, t, spec, lambda w: _occurrence(w, zone, fold=0))
    # When t is the first occurrence of a repeated wall-clock time, the second occurrences of
    # the earlier wall-clock times of the overlap still lie ahead. So this search starts at the
    # wall-clock time whose second occurrence is t.
    second_start = wall - (_instant(wall, zone, fold=1) - t)
    second = _first_due_after(fields, second_start, t, spec, lambda w: _occurrence(w, zone, fold=1))
    return min(first, second)


def _first_due_after(
    fields: _CronFields,
    wall: dt.datetime,
    t: dt.datetime,
    spec: str,
    instant_of: Callable[[dt.datetime], dt.datetime | None],
) -> dt.datetime:
    """Return the first instant after ``t`` of the matching wall-clock times after ``wall``.

    ``instant_of`` returns the due instant of a wall-clock time, or None if it has none. Only
    the wall-clock times of one DST change are skipped, because the instants grow with them.
    """
    last_year = wall.year + _MAX_SEARCH_YEARS
    while wall.year <= last_year:
        wall = _next_cron(fields, wall, spec)
        instant = instant_of(wall)
        if instant is not None and instant > t:
            return instant
    raise RuntimeError(f"Schedule {spec!r} has no due time within {_MAX_SEARCH_YEARS} years after {t.isoformat()}.")


def _first_occurrence_or_gap_end(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    instant = _occurrence(wall, zone, fold=0)
    return instant if instant is not None else _gap_end(wall, zone)


def _occurrence(wall: dt.datetime, zone: ZoneInfo, *, fold: int) -> dt.datetime | None:
    """Return the instant of ``wall`` in ``zone``, or None if a DST gap skips it.

    In a DST overlap, fold 0 selects the first occurrence and fold 1 the second. Elsewhere
    both select the only one.
    """
    instant = _instant(wall, zone, fold=fold)
    return instant if _wall_time(instant, zone) == wall else None


def _gap_end(wall: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """Return the first valid instant after the DST gap that skips ``wall``."""
    # In a gap, fold=1 reads the wall-clock time with the UTC offset after the transition, which
    # gives an instant before it, and fold=0 with the offset before, which gives one after it.
    # The transition lies between them, at a whole second in tzdata.
    before = int(_instant(wall, zone, fold=1).timestamp())
    after = int(_instant(wall, zone, fold=0).timestamp())
    new_offset = _utc_offset(after, zone)
    while after - before > 1:
        middle = (before + after) // 2
        if _utc_offset(middle, zone) == new_offset:
            after = middle
        else:
            before = middle
    return dt.datetime.fromtimestamp(after, dt.timezone.utc)


def _utc_offset(timestamp: int, zone: ZoneInfo) -> dt.timedelta | None:
    return dt.datetime.fromtimestamp(timestamp, zone).utcoffset()


def _wall_time(instant: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    return instant.astimezone(zone).replace(tzinfo=None, fold=0)


def _instant(wall: dt.datetime, zone: ZoneInfo, *, fold: int) -> dt.datetime:
    return wall.replace(tzinfo=zone, fold=fold).astimezone(dt.timezone.utc)
