"""The web inbox's test stack: ``tests.api_stack`` (dev server, worker, SMTP sink, ``gd api``
process) with the API in ``dev`` mode (persona login) or ``oidc`` mode against a given
issuer; a browser (Debian's Chromium driven by Playwright, no browser download); and the
tokens that seed requests through the HTTP API as customers and RTs would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest_asyncio

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


@asynccontextmanager
async def portal_stack(tmp: Path, *, link_here: bool = False, **stack_options: Any) -> AsyncIterator[api_stack.Stack]:
    """``running_stack`` with the API in ``dev`` auth mode (key under ``tmp``), its SMTP at
    the stack's sink, and ``stack.who`` minting the journey's tokens. ``link_here``: the
    API's port is chosen up front and the worker's ``GD_APR_URL`` points at its portal, so
    the links in e-mails (set-password, e-mail confirmation) land on this stack."""
    from tests.test_api import Who

    key = tmp / "dev-key.pem"
    port = api_stack.free_port()
    original_env, original_port = api_stack.api_env, api_stack.free_port
    saved = os.environ.get("GD_APR_URL")

    def env(settings: Any, *args: Any) -> dict[str, str]:
        out = original_env(settings, *args)
        out.update({"GD_AUTH_MODE": "dev", "GD_AUTH_DEV_KEY": str(key), "GD_ENV": "dev",
                    "GD_SMTP_HOST": "127.0.0.1", "GD_SMTP_PORT": str(settings.smtp_port)})
        return out

    api_stack.api_env = env
    if link_here:
        os.environ["GD_APR_URL"] = f"http://127.0.0.1:{port}/portal"
        api_stack.free_port = lambda: port
    try:
        async with api_stack.running_stack(tmp, **stack_options) as running:
            api_stack.api_env, api_stack.free_port = original_env, original_port
            running.who = Who(DevTokens(key))
            yield running
    finally:
        api_stack.api_env, api_stack.free_port = original_env, original_port
        if saved is None:
            os.environ.pop("GD_APR_URL", None)
        else:
            os.environ["GD_APR_URL"] = saved


@asynccontextmanager
async def oidc_stack(tmp: Path, env: dict[str, str]) -> AsyncIterator[api_stack.Stack]:
    """The local OIDC provider (tests/oidc_provider.py, a process of its own) and a stack
    whose API is in ``oidc`` mode against it, with ``env`` (the web clients' settings) on
    top; ``stack.provider_url``, and ``provider_events(stack)`` for what it was asked."""
    ready, log = tmp / "provider.url", tmp / "provider.log"
    proc = subprocess.Popen([sys.executable, "-m", "tests.oidc_provider", "--ready-file", str(ready),
                             "--log", str(log)], cwd=Path(__file__).resolve().parent.parent)
    try:
        give_up = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < give_up, "o provedor OIDC não subiu"
            time.sleep(0.1)
        url = ready.read_text()
        full = {"GD_AUTH_MODE": "oidc", "GD_AUTH_ISSUER": url, "GD_AUTH_JWKS_URL": f"{url}/jwks"}
        full.update({k: v.replace("{provider}", url) for k, v in env.items()})
        async with web_stack(tmp, full) as stack:
            stack.provider_log = log
            stack.provider_url = url
            yield stack
    finally:
        proc.terminate()
        proc.wait(10)


def provider_events(stack: Any) -> list[dict]:
    return [json.loads(line) for line in stack.provider_log.read_text().splitlines()]


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


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def chromium() -> AsyncIterator[Any]:
    """Debian's Chromium, one per test module (import the fixture by name)."""
    from playwright.async_api import async_playwright

    assert have_chromium(), "chromium ausente: make chromium (apt-get install -y chromium chromium-l10n)"
    async with async_playwright() as p:
        b = await browser(p)
        yield b
        await b.close()


async def shot(page: Any, name: str) -> None:
    """A full-page screenshot under docs/screenshots/ (the README shows them)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def axe_serious(page: Any) -> list[str]:
    """axe-core (from axe-playwright-python) on the page: serious and critical violations."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    found = results.response.get("violations", [])
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])}× e.g. {v['nodes'][0]['target']})"
            for v in found if v.get("impact") in ("serious", "critical")]
