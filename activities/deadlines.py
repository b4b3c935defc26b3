"""Deadline computation as (local) activities, so each due date lands in history once.

The calendar and the policies are tables that change (a new holiday, a new resolution);
a past request must keep the dates it was given, so workflows never compute them inline.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import activity

from domain.calendar import BusinessCalendar, default_calendar
from domain.policies import Deadline, compute_deadline
from models.activities import DeadlineQuery, ResumeQuery


class DeadlineActivities:
    def __init__(self, calendar: BusinessCalendar | None = None):
        self.calendar = calendar or default_calendar()

    @activity.defn(name="compute_deadline")
    def compute_deadline(self, query: DeadlineQuery) -> Deadline:
        return compute_deadline(
            query.policy,
            query.rule,
            query.start,
            generation_class=query.generation_class,
            works=query.works,
            voltage_kv=query.voltage_kv,
            calendar=self.calendar,
        )

    @activity.defn(name="resume_deadline")
    def resume_deadline(self, query: ResumeQuery) -> datetime:
        return self.calendar.shift_after_pause(
            query.due_at, timedelta(seconds=query.paused_seconds)
        )
