"""The store side of correcting an RT's e-mail (workflows/email_change.py).

``technician_email_facts`` reads the RT's status and current address; ``confirm_email_change``
uses the confirmation code once (its scrypt hash, ``TechnicianSecret`` kind
``email_change_code``, written by ``MailActivities.send_email_change_code``) and, in the
same transaction, makes the new address the RT's (``TechnicianRecord.email``: every later
e-mail to ``technician:KEY`` goes there). Neither the code nor an address is logged.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from temporalio import activity

from activities.mail_secrets import EMAIL_CODE_KIND, SecretRefused, redeem_secret
from activities.store import Store
from activities.tables import TechnicianRecord, TechnicianSecret
from models.activities import EmailChangeFacts, EmailCodeCheck
from models.names import Activities

_TECHNICIANS: sa.Table = TechnicianRecord.__table__  # type: ignore[attr-defined]
_SECRETS: sa.Table = TechnicianSecret.__table__  # type: ignore[attr-defined]


class EmailChangeActivities:
    def __init__(self, store: Store):
        self.store = store

    @activity.defn(name=Activities.TECHNICIAN_EMAIL_FACTS)
    def technician_email_facts(self, technician: str) -> EmailChangeFacts:
        with self.store.connection(write=False) as conn:
            row = conn.execute(sa.select(_TECHNICIANS.c.status, _TECHNICIANS.c.email)
                               .where(_TECHNICIANS.c.key == technician)).first()
        if row is None:
            return EmailChangeFacts()
        return EmailChangeFacts(status=row.status, email=row.email)

    @activity.defn(name=Activities.CONFIRM_EMAIL_CHANGE)
    def confirm_email_change(self, check: EmailCodeCheck) -> bool:
        """True when the code is the one sent, unused and not expired at ``check.at``: the
        address is then the RT's. False otherwise (nothing changes)."""

        def switch(conn: Connection) -> None:
            conn.execute(_TECHNICIANS.update().where(_TECHNICIANS.c.key == check.technician)
                         .values(email=check.email))

        try:
            redeem_secret(self.store, check.technician, EMAIL_CODE_KIND, check.code,
                          now=check.at, then=switch)
        except SecretRefused:
            return self._already_done(check)
        activity.logger.info("e-mail change confirmed: technician=%s", check.technician)
        return True

    def _already_done(self, check: EmailCodeCheck) -> bool:
        """A retried attempt whose first run committed: the code is used and the address
        is already the new one."""
        with self.store.connection(write=False) as conn:
            used = conn.execute(sa.select(_SECRETS.c.used_at).where(
                _SECRETS.c.technician == check.technician,
                _SECRETS.c.kind == EMAIL_CODE_KIND)).scalar()
            email = conn.execute(sa.select(_TECHNICIANS.c.email).where(
                _TECHNICIANS.c.key == check.technician)).scalar()
        return used is not None and email == check.email
