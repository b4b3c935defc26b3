"""Audit: history export, replay with today's code, timeline and SLA compliance report.

``export`` fetches every run of a workflow's continue-as-new chain as one JSON document;
``replay`` runs exported (or live) histories through the ``Replayer`` with the worker's
data converter; ``timeline`` reads a history into a pt-BR list of steps; ``sla`` measures
the deadline rules over the store's event log. ``cli`` holds the ``gd audit`` and
``gd report`` commands.
"""
