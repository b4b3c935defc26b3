"""A small SMTP sink for tests and the dev stack (aiosmtpd, in its own thread).

    sink = SmtpSink(save_dir="var/mail")   # save_dir optional: each message as <n>.eml
    sink.start()                           # a free port on 127.0.0.1; sink.port says which
    ...                                    # send to sink.host:sink.port
    sink.wait_for(3)                       # blocks; ``await sink.wait_for_async(3)`` in async code
    sink.messages[0]["From"], sink.envelopes[0].rcpt_tos
    sink.stop()

It is also a (async) context manager. Failure modes, switchable at any time:
``refuse_recipients`` (addresses answered ``550`` at RCPT TO, case-insensitive) and
``fail_next`` (the next N transactions answered ``451`` at the end of DATA: the client sent
everything and must retry). ``python -m tests.smtp_sink --port 1025 --save-dir var/mail``
runs it in the foreground.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import os
import re
import socket
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

REFUSED_REPLY = "550 5.1.1 Mailbox unavailable"
TRANSIENT_REPLY = "451 4.3.0 Temporary failure, please try again later"


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: tuple = ()  # the client's (host, port): one per SMTP connection


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class _Handler:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.lower() in {a.lower() for a in self.sink.refuse_recipients}:
            return REFUSED_REPLY
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.sink._take_failure():
            return TRANSIENT_REPLY
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        self.sink._sessions.add(server)
        self.sink._receive(raw, Envelope(envelope.mail_from, tuple(envelope.rcpt_tos),
                                         tuple(session.peer or ())))
        return "250 2.0.0 Message accepted for delivery"


class SmtpSink:
    """Accepts every message (unless told to fail), keeps it parsed, optionally saves it."""

    def __init__(self, save_dir: str | os.PathLike[str] | None = None):
        self.save_dir = Path(save_dir) if save_dir is not None else None
        self.host = "127.0.0.1"
        self.port = 0
        self.messages: list[EmailMessage] = []
        self.envelopes: list[Envelope] = []
        self.raw: list[bytes] = []
        self.refuse_recipients: set[str] = set()
        self.fail_next = 0
        self.transactions = 0  # DATA commands seen, failed ones included
        self._cond = threading.Condition()
        self._controller: Controller | None = None
        self._next_file = 1
        # SMTP sessions that sent a message (drop_connections); weak: closed ones go away.
        self._sessions: weakref.WeakSet = weakref.WeakSet()

    # --- lifecycle ----------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> SmtpSink:
        """Listen on ``host:port`` (``port=0``: a free one). Returns self."""
        if self._controller is not None:
            raise RuntimeError("SmtpSink already started")
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            self._next_file = 1 + max(
                (int(p.stem) for p in self.save_dir.glob("*.eml") if p.stem.isdigit()),
                default=0,
            )
        # aiosmtpd logs every envelope address at INFO; addresses are personal data.
        mail_log = logging.getLogger("mail.log")
        mail_log.setLevel(max(mail_log.level, logging.WARNING))
        self.host = host
        self.port = port or free_port(host)
        # server_hostname avoids a reverse DNS lookup (getfqdn) at start.
        self._controller = Controller(
            _Handler(self), hostname=host, port=self.port, server_hostname="gd-smtp-sink",
            enable_SMTPUTF8=True, ready_timeout=10.0,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start() if self._controller is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SmtpSink:
        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)

    def drop_connections(self) -> int:
        """Close, from the server's side, every connection that delivered a message and is
        still open (a relay's idle timeout or restart); returns how many were closed."""
        assert self._controller is not None and self._controller.loop is not None

        async def drop() -> int:
            open_ = [s for s in self._sessions
                     if s.transport is not None and not s.transport.is_closing()]
            for server in open_:
                server.transport.close()
            self._sessions.clear()
            await asyncio.sleep(0.05)  # the closes reach the sockets
            return len(open_)

        return asyncio.run_coroutine_threadsafe(drop(), self._controller.loop).result(10)

    # --- reading ------------------------------------------------------------------

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self.envelopes.clear()
            self.raw.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Block until at least ``count`` messages arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"SmtpSink: {len(self.messages)} message(s) after {timeout}s, "
                        f"expected {count}")
                self._cond.wait(left)
            return list(self.messages)

    async def wait_for_async(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        return await asyncio.to_thread(self.wait_for, count, timeout)

    def find(self, header: str, pattern: str) -> list[EmailMessage]:
        """Messages whose ``header`` matches the regular expression ``pattern``."""
        with self._cond:
            return [m for m in self.messages if re.search(pattern, str(m.get(header, "")))]

    # --- handler side ---------------------------------------------------------------

    def _take_failure(self) -> bool:
        with self._cond:
            self.transactions += 1
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False

    def _receive(self, raw: bytes, envelope: Envelope) -> None:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._cond:
            if self.save_dir is not None:
                self._save(raw)
            self.raw.append(raw)
            self.envelopes.append(envelope)
            self.messages.append(message)  # type: ignore[arg-type]
            self._cond.notify_all()

    def _save(self, raw: bytes) -> None:
        assert self.save_dir is not None
        target = self.save_dir / f"{self._next_file}.eml"
        self._next_file += 1
        # Written whole, then renamed: a reader of the directory never sees half a file.
        fd, tmp = tempfile.mkstemp(dir=self.save_dir, prefix=".tmp-", suffix=".part")
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
        os.replace(tmp, target)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="SMTP sink for the GD dev stack")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--save-dir", default="var/mail")
    args = parser.parse_args(argv)
    sink = SmtpSink(save_dir=args.save_dir).start(args.host, args.port)
    print(f"SMTP sink em {sink.host}:{sink.port}, mensagens em {args.save_dir} (Ctrl+C encerra)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
