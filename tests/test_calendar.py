"""Deadline arithmetic against real dates, worked out by hand from the 2026 calendar.

2026 reference: Carnival Mon 16 / Tue 17 Feb (not holidays), Good Friday 3 Apr,
Tiradentes Tue 21 Apr, Consciência Negra Fri 20 Nov, Christmas Fri 25 Dec,
1 Jan 2027 Fri. Belo Horizonte adds 15 Aug and 8 Dec (data file).
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.calendar import (
    TZ,
    BusinessCalendar,
    default_calendar,
    expand_extra_holidays,
    due_in_hours,
    load_extra_holidays,
)

MG = BusinessCalendar()  # state + national only, so tests do not depend on the data file


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- what the holidays package says, and the DOMAIN rules on top of it -------------------


@pytest.mark.parametrize(
    "day, is_business",
    [
        (date(2026, 2, 16), True),  # Carnival Monday: not a holiday (DOMAIN)
        (date(2026, 2, 17), True),  # Carnival Tuesday
        (date(2026, 2, 18), True),  # Ash Wednesday
        (date(2026, 4, 3), False),  # Good Friday
        (date(2026, 4, 21), False),  # Tiradentes (also MG's Data Magna)
        (date(2026, 6, 4), True),  # Corpus Christi: "optional" in the package, not in MG's list
        (date(2026, 11, 20), False),  # Consciência Negra, national since 2024
        (date(2023, 11, 20), True),  # ... but not before (a Monday)
        (date(2026, 12, 24), True),  # Christmas Eve: working day
        (date(2026, 12, 25), False),
        (date(2026, 12, 31), True),
        (date(2027, 1, 1), False),
        (date(2026, 3, 7), False),  # Saturday
        (date(2026, 3, 8), False),  # Sunday
        (date(2026, 3, 9), True),
    ],
)
def test_is_business_day(day: date, is_business: bool) -> None:
    assert MG.is_business_day(day) is is_business


def test_package_treats_carnival_as_optional_only() -> None:
    public = holidays.Brazil(subdiv="MG", years=2026)
    optional = holidays.Brazil(subdiv="MG", years=2026, categories=("optional",))
    assert date(2026, 2, 16) not in public and date(2026, 2, 17) not in public
    assert date(2026, 2, 16) in optional and date(2026, 2, 17) in optional


def test_default_calendar_adds_belo_horizonte_holidays() -> None:
    names = dict(load_extra_holidays())
    assert "Assunção" in names[date(2025, 8, 15)]
    assert "Imaculada" in names[date(2026, 12, 8)]
    assert not default_calendar().is_business_day(date(2026, 12, 8))  # a Tuesday
    assert MG.is_business_day(date(2026, 12, 8))
    assert default_calendar() is default_calendar()


def required_years(today: date) -> range:
    """This year through next year + 1: a deadline computed today can fall that far."""
    return range(today.year, today.year + 3)


def test_distributor_holidays_exist_through_next_year_plus_one() -> None:
    # The year comes from the clock, in the distributor's zone (31 Dec 22:00 in São Paulo
    # is already 1 January in UTC).
    today = datetime.now(ZoneInfo("America/Sao_Paulo")).date()
    names = dict(load_extra_holidays())
    for year in required_years(today):
        assert "Assunção" in names.get(date(year, 8, 15), ""), f"no 15/08/{year}"
        assert "Imaculada" in names.get(date(year, 12, 8), ""), f"no 08/12/{year}"
        assert not default_calendar().is_business_day(date(year, 12, 8)), year
        assert not default_calendar().is_business_day(date(year, 1, 1)), year  # official data


def test_fixed_date_holidays_are_a_rule_not_a_list() -> None:
    # The data file states fixed-date holidays once, as month and day.
    data = json.loads(resources.files("domain").joinpath("data", "extra_holidays.json").read_text("utf-8"))
    assert {(r["month"], r["day"]) for r in data["fixed"]} == {(8, 15), (12, 8)}
    assert all("date" not in r for r in data["fixed"])
    rule = {"fixed": [{"month": 12, "day": 8, "since": 2026, "name": "Imaculada"}],
            "dates": [{"date": "2027-03-09", "name": "ponto facultativo"}]}
    assert expand_extra_holidays(rule, range(2025, 2029)) == (
        (date(2026, 12, 8), "Imaculada"),
        (date(2027, 3, 9), "ponto facultativo"),
        (date(2027, 12, 8), "Imaculada"),
        (date(2028, 12, 8), "Imaculada"),
    )
    # Far beyond any list anyone would have typed: still there.
    assert not default_calendar().is_business_day(date(2099, 12, 8))  # a Tuesday
    assert default_calendar().is_business_day(date(2099, 12, 9))


def test_extra_holidays_in_constructor() -> None:
    cal = BusinessCalendar(extra_holidays=[date(2026, 3, 9)])
    assert not cal.is_business_day(date(2026, 3, 9))
    assert cal.next_business_day(date(2026, 3, 6)) == date(2026, 3, 10)


# --- date helpers ------------------------------------------------------------------------


def test_next_business_day_is_strictly_after() -> None:
    assert MG.next_business_day(date(2026, 3, 9)) == date(2026, 3, 10)
    assert MG.next_business_day(date(2026, 4, 2)) == date(2026, 4, 6)  # over Good Friday


def test_roll_forward() -> None:
    assert MG.roll_forward(date(2026, 3, 9)) == date(2026, 3, 9)
    assert MG.roll_forward(date(2026, 4, 21)) == date(2026, 4, 22)
    assert MG.roll_forward(date(2026, 12, 25)) == date(2026, 12, 28)


def test_add_business_days() -> None:
    assert MG.add_business_days(date(2026, 4, 17), 3) == date(2026, 4, 23)
    assert MG.add_business_days(date(2026, 4, 22), -2) == date(2026, 4, 17)
    assert MG.add_business_days(date(2026, 3, 7), 0) == date(2026, 3, 7)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        (date(2026, 4, 17), date(2026, 4, 23), 3),  # Mon 20, Wed 22, Thu 23
        (date(2026, 4, 23), date(2026, 4, 17), -3),
        (date(2026, 4, 17), date(2026, 4, 17), 0),
        (date(2026, 12, 31), date(2027, 1, 4), 1),  # only Monday 4 Jan
    ],
)
def test_business_days_between(a: date, b: date, expected: int) -> None:
    assert MG.business_days_between(a, b) == expected


# --- N days (REN art. 656) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "event, n, due",
    [
        # parecer micro: 6 Apr + 15 = 21 Apr (Tiradentes) -> Wed 22 Apr
        ("2026-04-06T10:00-03:00", 15, "2026-04-22T23:59:59-03:00"),
        # parecer mini: 20 Mar + 30 = Sun 19 Apr -> Mon 20 Apr
        ("2026-03-20T14:00-03:00", 30, "2026-04-20T23:59:59-03:00"),
        # 4 Mar + 30 = Good Friday 3 Apr -> Sat, Sun -> Mon 6 Apr
        ("2026-03-04T09:00-03:00", 30, "2026-04-06T23:59:59-03:00"),
        # landing on Carnival Monday / Tuesday: they are business days, no roll
        ("2026-02-01T10:00-03:00", 15, "2026-02-16T23:59:59-03:00"),
        ("2026-02-02T10:00-03:00", 15, "2026-02-17T23:59:59-03:00"),
        # 5 Nov + 15 = Fri 20 Nov (Consciência Negra) -> Mon 23 Nov
        ("2026-11-05T10:00-03:00", 15, "2026-11-23T23:59:59-03:00"),
        # 10 Dec + 15 = Fri 25 Dec -> Mon 28 Dec
        ("2026-12-10T10:00-03:00", 15, "2026-12-28T23:59:59-03:00"),
        # year boundary: 20 Dec + 15 = Mon 4 Jan 2027
        ("2026-12-20T10:00-03:00", 15, "2027-01-04T23:59:59-03:00"),
        # 17 Dec + 15 = Fri 1 Jan 2027 -> Mon 4 Jan
        ("2026-12-17T10:00-03:00", 15, "2027-01-04T23:59:59-03:00"),
        # given in UTC, already the next day in UTC but still Sun 1 Mar locally
        ("2026-03-02T02:30:00+00:00", 15, "2026-03-16T23:59:59-03:00"),
        # given in UTC, Mon 2 Mar 00:30 locally
        ("2026-03-02T03:30:00+00:00", 15, "2026-03-17T23:59:59-03:00"),
        # late at night locally counts from that local date
        ("2026-03-06T23:59:00-03:00", 30, "2026-04-06T23:59:59-03:00"),
        # historic summer time (Brazil DST until 2019): offset -02:00 on the due date
        ("2018-01-02T10:00-02:00", 15, "2018-01-17T23:59:59-02:00"),
        ("2026-04-06T10:00-03:00", 0, "2026-04-06T23:59:59-03:00"),
    ],
)
def test_due_in_days(event: str, n: int, due: str) -> None:
    result = MG.due_in_days(at(event), n)
    assert result == at(due)
    assert result.isoformat() == at(due).isoformat()  # same instant and same -03:00 offset
    assert result.tzinfo is TZ


def test_due_in_days_rolls_over_belo_horizonte_holiday() -> None:
    event = at("2025-07-31T10:00-03:00")  # + 15 = Fri 15 Aug 2025
    assert MG.due_in_days(event, 15) == at("2025-08-15T23:59:59-03:00")
    assert default_calendar().due_in_days(event, 15) == at("2025-08-18T23:59:59-03:00")


# --- N business days ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "event, n, due",
    [
        # technician review from Fri 23:59: Mon 20, (Tiradentes), Wed 22, Thu 23
        ("2026-04-17T23:59:00-03:00", 3, "2026-04-23T23:59:59-03:00"),
        # Carnival counts: Mon 16, Tue 17, Wed 18
        ("2026-02-13T10:00-03:00", 3, "2026-02-18T23:59:59-03:00"),
        # inspection < 2.3 kV around Good Friday: Thu 2, Mon 6, Tue 7, Wed 8, Thu 9
        ("2026-04-01T10:00-03:00", 5, "2026-04-09T23:59:59-03:00"),
        # Thu 23:59 local is Fri in UTC; counting starts from Thursday's local date
        ("2026-03-05T23:59:00-03:00", 3, "2026-03-10T23:59:59-03:00"),
        ("2026-03-06T02:59:00+00:00", 3, "2026-03-10T23:59:59-03:00"),
        # event on a Saturday
        ("2026-03-07T10:00-03:00", 1, "2026-03-09T23:59:59-03:00"),
        # over Christmas and New Year (24 and 31 Dec are working days)
        ("2026-12-18T10:00-03:00", 10, "2027-01-05T23:59:59-03:00"),
        # inspection 69 kV+ across 20 Nov
        ("2026-11-10T10:00-03:00", 15, "2026-12-02T23:59:59-03:00"),
    ],
)
def test_due_in_business_days(event: str, n: int, due: str) -> None:
    result = MG.due_in_business_days(at(event), n)
    assert result.isoformat() == at(due).isoformat()


# --- N hours -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event, n, due",
    [
        # Friday 23:30: the 24 h APR window ends Saturday 23:30, weekends do not matter
        ("2026-03-06T23:30:00-03:00", 24, "2026-03-07T23:30:00-03:00"),
        # given in UTC (Sun 1 Mar 23:30 local)
        ("2026-03-02T02:30:00+00:00", 24, "2026-03-02T23:30:00-03:00"),
        # Good Friday does not stop the clock
        ("2026-04-02T18:00:00-03:00", 24, "2026-04-03T18:00:00-03:00"),
        # end of summer time 2018-02-18 (clocks went back one hour): 24 elapsed hours
        ("2018-02-17T12:00:00-02:00", 24, "2018-02-18T11:00:00-03:00"),
    ],
)
def test_due_in_hours(event: str, n: int, due: str) -> None:
    for result in (due_in_hours(at(event), n), MG.due_in_hours(at(event), n)):
        assert result.isoformat() == at(due).isoformat()
        assert result - at(event) == timedelta(hours=n)


# --- reminders and pauses ----------------------------------------------------------------


@pytest.mark.parametrize(
    "due, business_days, remind",
    [
        # before Wed 22 Apr: Mon 20 (1), Fri 17 (2); Tiradentes skipped
        ("2026-04-22T23:59:59-03:00", 2, "2026-04-17T08:00:00-03:00"),
        ("2026-03-16T23:59:59-03:00", 2, "2026-03-12T08:00:00-03:00"),
        ("2026-03-16T23:59:59-03:00", 1, "2026-03-13T08:00:00-03:00"),
        # due given in UTC is still Mon 16 Mar locally
        ("2026-03-17T02:59:59+00:00", 2, "2026-03-12T08:00:00-03:00"),
        # across New Year
        ("2027-01-05T23:59:59-03:00", 2, "2026-12-31T08:00:00-03:00"),
    ],
)
def test_reminder_before(due: str, business_days: int, remind: str) -> None:
    assert MG.reminder_before(at(due), business_days).isoformat() == at(remind).isoformat()


def test_reminder_default_is_two_business_days() -> None:
    due = at("2026-03-16T23:59:59-03:00")
    assert MG.reminder_before(due) == MG.reminder_before(due, 2)


@pytest.mark.parametrize(
    "due, paused, shifted",
    [
        # Fri + 2 days lands on Sunday -> Monday 23:59:59
        ("2026-03-13T23:59:59-03:00", timedelta(days=2), "2026-03-16T23:59:59-03:00"),
        ("2026-03-13T23:59:59-03:00", timedelta(days=1), "2026-03-16T23:59:59-03:00"),
        # lands on a business day: kept as is
        ("2026-03-10T23:59:59-03:00", timedelta(days=3), "2026-03-13T23:59:59-03:00"),
        ("2026-03-10T23:59:59-03:00", timedelta(hours=5), "2026-03-11T04:59:59-03:00"),
        # two hours past Thursday midnight is Good Friday -> Monday
        ("2026-04-02T23:59:59-03:00", timedelta(hours=2), "2026-04-06T23:59:59-03:00"),
        ("2026-03-13T23:59:59-03:00", timedelta(0), "2026-03-13T23:59:59-03:00"),
        # historic: summer time ended 18 Feb 2018, so 7 elapsed days end at 22:59:59 local
        ("2018-02-14T23:59:59-02:00", timedelta(days=7), "2018-02-21T22:59:59-03:00"),
    ],
)
def test_shift_after_pause(due: str, paused: timedelta, shifted: str) -> None:
    assert MG.shift_after_pause(at(due), paused).isoformat() == at(shifted).isoformat()


def test_negative_pause_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        MG.shift_after_pause(at("2026-03-13T23:59:59-03:00"), timedelta(hours=-1))


def test_negative_amount_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        MG.due_in_days(at("2026-03-13T10:00-03:00"), -1)


# --- naive datetimes ---------------------------------------------------------------------

NAIVE = datetime(2026, 3, 13, 10, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: MG.due_in_days(NAIVE, 15),
        lambda: MG.due_in_business_days(NAIVE, 3),
        lambda: MG.due_in_hours(NAIVE, 24),
        lambda: due_in_hours(NAIVE, 24),
        lambda: MG.reminder_before(NAIVE),
        lambda: MG.shift_after_pause(NAIVE, timedelta(days=1)),
    ],
)
def test_naive_datetime_rejected(call) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        call()


# --- properties --------------------------------------------------------------------------

ZONES = st.sampled_from([timezone.utc, TZ, timezone(timedelta(hours=5, minutes=30))])
EVENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2060, 12, 31), timezones=ZONES
)


@settings(max_examples=300, deadline=None)
@given(event=EVENTS, n=st.integers(min_value=0, max_value=400))
def test_due_in_days_lands_on_first_business_day_from_target(event: datetime, n: int) -> None:
    cal = default_calendar()
    due = cal.due_in_days(event, n)
    target = event.astimezone(TZ).date() + timedelta(days=n)
    assert cal.is_business_day(due.date())
    assert due.date() >= target
    # no earlier business day was skipped
    skipped = (target + timedelta(days=k) for k in range((due.date() - target).days))
    assert not any(cal.is_business_day(day) for day in skipped)
    assert (due.hour, due.minute, due.second) == (23, 59, 59)


@settings(max_examples=200, deadline=None)
@given(event=EVENTS, n=st.integers(min_value=0, max_value=60))
def test_due_in_business_days_counts_exactly_n(event: datetime, n: int) -> None:
    cal = default_calendar()
    due = cal.due_in_business_days(event, n)
    assert cal.business_days_between(event.astimezone(TZ).date(), due.date()) == n
    assert n == 0 or cal.is_business_day(due.date())


@settings(max_examples=200, deadline=None)
@given(event=EVENTS, paused=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)))
def test_shift_after_pause_never_earlier_and_on_business_day(
    event: datetime, paused: timedelta
) -> None:
    cal = default_calendar()
    due = cal.due_in_days(event, 15)
    shifted = cal.shift_after_pause(due, paused)
    # elapsed time (through UTC): a same-zone `due + paused` is wall-clock across old DST
    assert shifted >= (due.astimezone(timezone.utc) + paused)
    assert cal.is_business_day(shifted.date())


# --- workflow sandbox safety -------------------------------------------------------------


def test_no_holidays_object_built_after_import(monkeypatch) -> None:
    # Building a `holidays` object reads the locale, which the Temporal sandbox refuses:
    # every year a deadline can touch must come from the table built at import.
    import domain.calendar as module

    def refuse(*args, **kwargs):
        raise AssertionError("holidays object built after import")

    monkeypatch.setattr(module, "_BrazilHolidays", refuse)
    cal = BusinessCalendar(extra_holidays=[date(2031, 3, 10)])
    assert cal.due_in_days(at("2031-03-01T10:00-03:00"), 9) == at("2031-03-11T23:59:59-03:00")
    assert not default_calendar().is_business_day(date(2100, 12, 25))


def test_years_outside_table_still_work_outside_workflows() -> None:
    assert MG.is_business_day(date(1985, 3, 12))
    assert not MG.is_business_day(date(1985, 4, 5))  # Good Friday


def test_year_without_holiday_data_raises() -> None:
    # The package stops at 2100; an empty year must not pass for a year without holidays.
    with pytest.raises(ValueError, match="no holiday data for 2150"):
        MG.is_business_day(date(2150, 12, 25))
