"""Business calendar and deadline arithmetic for the distributor (CEMIG, Minas Gerais).

Rules from DOMAIN.md, "Deadlines: how to count":
- N days: 23:59:59 local of (event's local date + N), rolled forward to the next business
  day when that date is a weekend or holiday (REN 1000/2021 art. 656);
- N business days: 23:59:59 local of the N-th business day after the event's local date;
- N hours: exactly N wall-clock hours after the event.

Used from Temporal workflows (imported through imports_passed_through): no clock reads and
no randomness here. The only I/O is reading the packaged holiday file, once, at import.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta, timezone
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

# The concrete class, not `holidays.Brazil`: that name is a lazy loader which imports the
# country module on first use, and inside the Temporal sandbox that late import re-runs
# dateutil's module setup, which reads the clock (time.localtime) and is refused.
from holidays.countries.brazil import Brazil as _BrazilHolidays

TZ = ZoneInfo("America/Sao_Paulo")

# A deadline ends at the last whole second of its day, as the distributor's systems show it.
END_OF_DAY = time(23, 59, 59)
REMINDER_TIME = time(8, 0)

_EXTRA_HOLIDAYS_FILE = "extra_holidays.json"

# Years computed when this module is imported (outside any workflow). Building a `holidays`
# object reads the locale for its translations, which the Temporal sandbox refuses, so a
# workflow must only ever hit this precomputed table. ~20 ms for the whole range.
PRECOMPUTED_YEARS = range(1990, 2101)


@cache
def _holiday_table(subdiv: str) -> dict[int, frozenset[date]]:
    """Official holiday dates by year over PRECOMPUTED_YEARS, built in one pass."""
    # Only the public category: Carnival, Corpus Christi etc. are "optional" in the
    # package, and DOMAIN.md says Carnival is not a holiday.
    official = _BrazilHolidays(subdiv=subdiv, years=PRECOMPUTED_YEARS)
    by_year: dict[int, set[date]] = {year: set() for year in PRECOMPUTED_YEARS}
    for day in official:
        by_year[day.year].add(day)
    return {year: frozenset(days) for year, days in by_year.items()}


@cache
def _official_holidays(subdiv: str, year: int) -> frozenset[date]:
    table = _holiday_table(subdiv)
    if year in table:
        return table[year]
    # Outside the table (never for a real deadline): works outside a workflow only.
    days = frozenset(_BrazilHolidays(subdiv=subdiv, years=year).keys())
    if not days:
        # Every year has 1 January; none at all means the package does not cover the year
        # (it stops at 2100), and silently treating it as holiday-free would be wrong.
        raise ValueError(f"no holiday data for {year} (subdiv {subdiv!r})")
    return days


def _require_aware(moment: datetime, name: str = "datetime") -> None:
    # A naive datetime has no defined instant; guessing its zone would shift deadlines.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")


def local_date(moment: datetime) -> date:
    """The calendar date of an aware instant in the distributor's time zone."""
    _require_aware(moment)
    return moment.astimezone(TZ).date()


def end_of_day(day: date) -> datetime:
    """23:59:59 local of `day`; zoneinfo picks the offset valid on that date (historic DST)."""
    return datetime.combine(day, END_OF_DAY, tzinfo=TZ)


class BusinessCalendar:
    """Weekends, Brazil + state holidays from `holidays`, plus the distributor's own dates."""

    def __init__(self, extra_holidays: Iterable[date] = (), subdiv: str = "MG") -> None:
        self._subdiv = subdiv
        self._extra = frozenset(extra_holidays)

    @property
    def subdiv(self) -> str:
        return self._subdiv

    @property
    def extra_holidays(self) -> frozenset[date]:
        return self._extra

    def _official_holidays(self, year: int) -> frozenset[date]:
        return _official_holidays(self._subdiv, year)

    def is_holiday(self, d: date) -> bool:
        return d in self._extra or d in self._official_holidays(d.year)

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and not self.is_holiday(d)

    def next_business_day(self, d: date) -> date:
        """The first business day strictly after `d`."""
        d += timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d

    def previous_business_day(self, d: date) -> date:
        """The last business day strictly before `d`."""
        d -= timedelta(days=1)
        while not self.is_business_day(d):
            d -= timedelta(days=1)
        return d

    def roll_forward(self, d: date) -> date:
        """`d` itself when it is a business day, else the next one."""
        return d if self.is_business_day(d) else self.next_business_day(d)

    def add_business_days(self, d: date, n: int) -> date:
        """The n-th business day strictly after `d` (strictly before it when n < 0)."""
        step = self.next_business_day if n >= 0 else self.previous_business_day
        for _ in range(abs(n)):
            d = step(d)
        return d

    def business_days_between(self, a: date, b: date) -> int:
        """Business days in (a, b]; negative (those in (b, a]) when b < a. For "time left"."""
        if b < a:
            return -self.business_days_between(b, a)
        count = 0
        d = a + timedelta(days=1)
        while d <= b:
            count += self.is_business_day(d)
            d += timedelta(days=1)
        return count

    # --- deadlines -------------------------------------------------------------------

    def due_in_days(self, event: datetime, n: int) -> datetime:
        """N calendar days: the day after the event is day 1 (REN art. 656)."""
        _require_non_negative(n)
        target = local_date(event) + timedelta(days=n)
        return end_of_day(self.roll_forward(target))

    def due_in_business_days(self, event: datetime, n: int) -> datetime:
        """N business days; the event's own local date never counts, even if a business day."""
        _require_non_negative(n)
        return end_of_day(self.add_business_days(local_date(event), n))

    def due_in_hours(self, event: datetime, n: int) -> datetime:
        return due_in_hours(event, n)

    def reminder_before(self, due: datetime, business_days: int = 2) -> datetime:
        """08:00 local, `business_days` business days before the due date."""
        _require_non_negative(business_days)
        day = self.add_business_days(local_date(due), -business_days)
        return datetime.combine(day, REMINDER_TIME, tzinfo=TZ)

    def shift_after_pause(self, due: datetime, paused: timedelta) -> datetime:
        """Resume after a pause (REN art. 64): move later by the pause, keep it on a business day."""
        _require_aware(due, "due")
        if paused < timedelta(0):
            raise ValueError(f"paused duration must not be negative, got {paused}")
        # The pause is an elapsed duration, so the requester keeps the same real time left.
        shifted = _add_elapsed(due, paused)
        if self.is_business_day(shifted.date()):
            return shifted
        return end_of_day(self.next_business_day(shifted.date()))


def _require_non_negative(n: int) -> None:
    if n < 0:
        raise ValueError(f"a deadline amount must not be negative, got {n}")


def _add_elapsed(moment: datetime, delta: timedelta) -> datetime:
    # Arithmetic on aware datetimes in the same zone is wall-clock; going through UTC makes
    # it elapsed time, which is what "N hours" means across an (historic) DST change.
    return (moment.astimezone(timezone.utc) + delta).astimezone(TZ)


def due_in_hours(event: datetime, n: int) -> datetime:
    """Exactly n elapsed hours after the event, expressed in the distributor's zone."""
    _require_aware(event, "event")
    _require_non_negative(n)
    return _add_elapsed(event, timedelta(hours=n))


def expand_extra_holidays(data: dict, years: Iterable[int]) -> tuple[tuple[date, str], ...]:
    """(date, name) pairs of the distributor's holidays over ``years``: each ``fixed`` rule
    (same month and day every year from ``since``) and each one-off ``dates`` entry."""
    years = list(years)
    pairs = [
        (date(year, rule["month"], rule["day"]), rule["name"])
        for rule in data.get("fixed", [])
        for year in years
        if year >= rule.get("since", years[0] if years else year)
    ]
    pairs += [(date.fromisoformat(item["date"]), item["name"]) for item in data.get("dates", [])]
    return tuple(sorted(pairs))


@cache
def load_extra_holidays() -> tuple[tuple[date, str], ...]:
    """(date, name) pairs from the packaged data file, read once, over PRECOMPUTED_YEARS:
    a fixed-date holiday is a rule, so it cannot run out before the official table does."""
    text = resources.files("domain").joinpath("data", _EXTRA_HOLIDAYS_FILE).read_text("utf-8")
    return expand_extra_holidays(json.loads(text), PRECOMPUTED_YEARS)


@cache
def default_calendar() -> BusinessCalendar:
    """Minas Gerais plus the distributor's own dates (municipal holidays, ponto facultativo)."""
    return BusinessCalendar(extra_holidays=(d for d, _ in load_extra_holidays()), subdiv="MG")


# Module-level shortcuts on the default calendar, for callers that do not configure one.


def is_business_day(d: date) -> bool:
    return default_calendar().is_business_day(d)


def due_in_days(event: datetime, n: int) -> datetime:
    return default_calendar().due_in_days(event, n)


def due_in_business_days(event: datetime, n: int) -> datetime:
    return default_calendar().due_in_business_days(event, n)


def reminder_before(due: datetime, business_days: int = 2) -> datetime:
    return default_calendar().reminder_before(due, business_days)


def shift_after_pause(due: datetime, paused: timedelta) -> datetime:
    return default_calendar().shift_after_pause(due, paused)


# Warm the caches at import: this module is imported through imports_passed_through,
# outside the sandbox, so no workflow ever pays for (or is refused) the file and locale reads.
default_calendar()
_holiday_table(default_calendar().subdiv)
