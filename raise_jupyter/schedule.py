"""Schedules of alerts and live tables: ``hourly``, ``daily``, ``every 30s`` and cron strings.

Every schedule is evaluated in UTC. Fixed intervals are aligned to the Unix epoch, so
``every 5m`` is due at :00, :05, :10 and so on, and every process computes the same due times.
Cron strings have the five fields ``minute hour day-of-month month day-of-week`` of Vixie cron.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass, field

from raise_jupyter.errors import DefinitionError

__all__ = ["Schedule", "parse_schedule"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_VALID_FORMS = "Use 'hourly', 'daily', 'every 30s' (s, m, h or d) or a five-field cron string such as '*/15 * * * *'."

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

_MONTH_NAMES = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
_WEEKDAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

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

    def matches_day(self, day: dt.date) -> bool:
        day_match = day.day in self.days
        weekday_match = (day.weekday() + 1) % 7 in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return day_match or weekday_match
        return day_match and weekday_match


@dataclass(frozen=True)
class Schedule:
    """When a task is due, parsed from a spec such as ``"hourly"``, ``"every 5m"`` or ``"0 9 * * 1-5"``.

    ``Schedule(spec)`` parses and normalizes the spec, and raises DefinitionError if it is
    invalid. Two schedules are equal when their normalized specs are equal. ``str()`` returns
    the normalized spec, which the catalog stores.

    Examples
    --------
    >>> Schedule("every 90 seconds")
    Schedule('every 90s')
    >>> str(Schedule.cron("*/15  9-17 * * MON-FRI"))
    '*/15 9-17 * * mon-fri'
    """

    spec: str
    _interval_s: int | None = field(init=False, repr=False, compare=False)
    _cron: _CronFields | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec, interval_s, cron = _parse(self.spec)
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "_interval_s", interval_s)
        object.__setattr__(self, "_cron", cron)

    @classmethod
    def hourly(cls) -> Schedule:
        """Return the schedule due at minute 0 of every hour, UTC."""
        return cls("hourly")

    @classmethod
    def daily(cls) -> Schedule:
        """Return the schedule due at 00:00 UTC every day."""
        return cls("daily")

    @classmethod
    def every(cls, *, seconds: float = 0, minutes: float = 0, hours: float = 0, days: float = 0) -> Schedule:
        """Return a fixed-interval schedule of the sum of the arguments, a whole number of seconds."""
        total = seconds + minutes * 60 + hours * 3600 + days * 86_400
        if total != int(total):
            raise DefinitionError(f"Invalid interval of {total} seconds: use a whole number of seconds, at least 1.")
        return cls(f"every {int(total)}s")

    @classmethod
    def cron(cls, expression: str) -> Schedule:
        """Return the schedule of a five-field cron string, evaluated in UTC."""
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise DefinitionError(
                f"Invalid cron string {expression!r}: expected five fields "
                "(minute hour day-of-month month day-of-week), such as '0 9 * * 1-5'."
            )
        return cls(expression)

    @property
    def interval(self) -> dt.timedelta | None:
        """Interval of a fixed-interval schedule; None for hourly, daily and cron schedules."""
        return dt.timedelta(seconds=self._interval_s) if self._interval_s is not None else None

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
        return _next_cron(self._cron, t, self.spec)


def parse_schedule(value: str | Schedule) -> Schedule:
    """Parse a schedule spec, or return ``value`` if it already is a Schedule.

    Raises
    ------
    DefinitionError
        If the spec is not ``hourly``, ``daily``, ``every N<unit>`` or a valid cron string.
    """
    if isinstance(value, Schedule):
        return value
    if not isinstance(value, str):
        raise DefinitionError(f"Invalid schedule {value!r}: expected a string or a Schedule. {_VALID_FORMS}")
    return Schedule(value)


# -- parsing ------------------------------------------------------------------------------------


def _parse(value: object) -> tuple[str, int | None, _CronFields | None]:
    """Return the normalized spec, the interval in seconds (or None) and the cron fields (or None)."""
    if not isinstance(value, str):
        raise DefinitionError(f"Invalid schedule {value!r}: expected a string. {_VALID_FORMS}")
    try:
        return _parse_text(value)
    except _InvalidSpec as reason:
        raise DefinitionError(f"Invalid schedule {value!r}: {reason}. {_VALID_FORMS}") from None


def _parse_text(value: str) -> tuple[str, int | None, _CronFields | None]:
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
