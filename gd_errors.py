"""The three errors of the GD client, shared by ``gd_client``, ``listing`` and ``docstore``:

- ``GdRefused(ValueError)``: a refused action or bad input; ``.message`` (one pt-BR line)
  and ``.problems`` (each rule broken);
- ``GdNotFound(GdRefused)``: no such process;
- ``GdUnavailable(RuntimeError)``: no Temporal server, or no worker answering.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import ParamSpec, TypeVar

from models.common import InputRefused, Problem

P = ParamSpec("P")
T = TypeVar("T")


def one_line(text: str) -> str:
    return " ".join(str(text).split())


class GdRefused(ValueError):
    """A refused action or bad input: ``message`` is one pt-BR line, ``problems`` each rule."""

    def __init__(self, message: str | None = None, problems: Sequence[Problem] = ()):
        self.problems = list(problems) or [
            Problem(field="", code="refused", message=message or "ação recusada")
        ]
        self.message = one_line(message or "; ".join(str(p) for p in self.problems))
        super().__init__(self.message)


class GdNotFound(GdRefused):
    """No process with that id."""


class GdUnavailable(RuntimeError):
    """Temporal cannot be reached, or no worker answers on the task queue."""

    def __init__(self, message: str):
        self.message = one_line(message)
        super().__init__(self.message)


def refused(prefix: str, problems: list[Problem]) -> GdRefused:
    listed = "; ".join(str(p) for p in problems)
    return GdRefused(f"{prefix}: {listed}" if prefix else listed, problems)


def refusing(parse: Callable[P, T]) -> Callable[P, T]:
    """A parser of ``models.ids`` (which raises the project's ``InputRefused``) as the
    client offers it: the same message, raised as ``GdRefused``."""

    @functools.wraps(parse)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return parse(*args, **kwargs)
        except InputRefused as error:
            raise GdRefused(str(error), error.problems) from None

    return wrapped
