"""The web inbox's test stack: ``tests.api_stack`` (dev server, worker, SMTP sink, ``gd api``
process) with the API in ``dev`` mode (persona login) or ``oidc`` mode against a given
issuer; a browser (Debian's Chromium driven by Playwright, no browser download); and the
tokens that seed requests through the HTTP API as customers and RTs would."""

from __future__ import annotations

import os
import shutil
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from api.auth import DevIssuer
from api.config import ApiSettings
from tests import api_stack

CHROMIUM = os.environ.get("GD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # pt-BR in the browser itself. On Linux Chromium takes its UI language (file pickers'
    # "Escolher arquivo", date fields' dd/mm/aaaa) from LANGUAGE (see ``browser``) and the
    # pt-BR.pak of Debian's chromium-l10n; --lang is what it reads elsewhere.
    "--lang=pt-BR",
]
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@asynccontextmanager
async def web_stack(tmp: Path, env: dict[str, str], **stack_options: Any) -> AsyncIterator[api_stack.Stack]:
    """``running_stack`` whose ``gd api`` process gets ``env`` on top of the usual
    (``stack_options``: e.g. ``worker_process=True`` for the benchmark)."""
    original = api_stack.api_env

    def patched(*args: Any) -> dict[str, str]:
        out = original(*args)
        out.update(env)
        return out

    api_stack.api_env = patched
    try:
        async with api_stack.running_stack(tmp, **stack_options) as stack:
            api_stack.api_env = original
            yield stack
    finally:
        api_stack.api_env = original


class DevTokens:
    """``Issuer.token``'s signature over the dev issuer's key (the API in dev mode)."""

    def __init__(self, key_path: Path):
        self.dev = DevIssuer(ApiSettings(auth_mode="dev", auth_dev_key=key_path))

    def token(self, sub: str, roles: list[str], *, council_key: str | None = None,
              document: str | None = None, **_: Any) -> str:
        return self.dev.mint(sub, roles, council_key=council_key, document=document)


def have_chromium() -> bool:
    return Path(CHROMIUM).exists() or shutil.which("chromium") is not None


async def browser(playwright: Any) -> Any:
    env = {**os.environ, "LANGUAGE": "pt_BR", "LANG": "pt_BR.UTF-8"}
    return await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, env=env)


async def axe_serious(page: Any) -> list[str]:
    """axe-core (from axe-playwright-python) on the page: serious and critical violations."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    found = results.response.get("violations", [])
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. {v['nodes'][0]['target']})"
            for v in found if v.get("impact") in ("serious", "critical")]
