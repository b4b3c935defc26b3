"""Deterministic workflow ids: one small mapping, used by workflows and clients alike."""

from __future__ import annotations


def access_request_id(request_id: str) -> str:
    return f"gd-request-{request_id}"


def technician_id(council: str, uf: str, registration: str) -> str:
    return f"gd-technician-{council}-{uf}-{registration}"


def beneficiaries_id(request_id: str) -> str:
    return f"gd-beneficiaries-{request_id}"
