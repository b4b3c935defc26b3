"""`python -m api`: the same as `gd api` (used by `gd dev up` and the tests)."""

import typer

from api.cli import serve

typer.run(serve)
