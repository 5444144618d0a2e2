"""The whole system in one process, for the tests that search everything that left it: the app on a real
aiohttp server with SMTP, APNs, FCM and a webhook receiver on loopback, and every log record captured.

The fixtures are in tests/faults/conftest.py: `config` (so that `client`, `api` and `cast` build the app
against the fakes), `logs` (every record of every logger at DEBUG for the test), `receiver` (a webhook
endpoint); the helpers are here.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable, Iterator
from typing import Any

from aiohttp import web

from gateway.keys import DISPATCHER
from gateway.logs import JsonFormatter
from tests.fakes.apns import FakeApns
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp, ReceivedMail

PUBLIC_URL = "http://portal.test"
LINK = re.compile(r"http://portal\.test(/portal/[ms]/[A-Za-z0-9_-]+)")
CSRF = re.compile(r'name="csrf" value="([^"]*)"')
CLIENT_MSG_ID = re.compile(r'name="client_msg_id" value="([^"]*)"')
# The loggers of the test's own servers (aiosmtpd behind FakeSmtp logs every command and byte it is sent at
# DEBUG): what they print is what the fakes received, which the tests search separately, not a log of
# the system's.
HARNESS_LOGGERS = ("mail.log",)


class Logs(logging.Handler):
    """Every record of every logger, at DEBUG, formatted with its traceback if it has one."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> Iterator[tuple[str, str]]:
        """Each record as the plain format would show it (with the full traceback), and as a JSON log line
        (SECUREMSG_LOG_FORMAT=json: with its request id, access fields and value-free traceback)."""
        as_json = JsonFormatter()
        for r in self.records:
            if r.name.startswith(HARNESS_LOGGERS):
                continue
            text = r.getMessage()
            if r.exc_info:
                text += "\n" + "".join(traceback.format_exception(*r.exc_info))
            if r.stack_info:
                text += "\n" + r.stack_info
            yield r.name, text
            yield r.name, as_json.format(r)

    def hits(self, needles: Iterable[str]) -> list[tuple[str, str, str]]:
        """(needle, logger, line) for every line holding any of the needles."""
        wanted = [n for n in needles if n]
        return [(n, name, line[:300]) for name, line in self.lines() for n in wanted if n in line]


class Receiver:
    """A webhook endpoint on loopback that records every delivery."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.headers.append(dict(request.headers))
        self.bodies.append(await request.read())
        return web.Response(text="ok")


async def drain(client: Any) -> int:
    return int(await client.server.app[DISPATCHER].drain())


def links_in(mail: ReceivedMail) -> list[str]:
    """The portal paths of the links an email carries (from its text part)."""
    part = mail.message.get_body(preferencelist=("plain",))
    assert part is not None
    return LINK.findall(str(part.get_content()))


def everything_sent(smtp: FakeSmtp, fake_apns: FakeApns, fake_fcm: FakeFcm, receiver: Receiver) -> bytes:
    """Every byte that left the system: raw SMTP data, APNs request paths, headers and bodies, FCM headers
    and bodies and its OAuth token requests, webhook headers and bodies."""
    chunks: list[bytes] = [m.raw for m in smtp.received] + list(smtp.dropped)
    for r in fake_apns.received:
        chunks += [r.path.encode(), json.dumps(r.headers).encode(), r.raw_body]
    for f in fake_fcm.received:
        chunks += [json.dumps(f.headers).encode(), json.dumps(f.body).encode()]
    chunks += [json.dumps(t.form).encode() for t in fake_fcm.token_requests]
    for headers, body in zip(receiver.headers, receiver.bodies, strict=True):
        chunks += [json.dumps(headers).encode(), body]
    return b"\n".join(chunks)
