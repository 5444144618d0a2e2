"""Fixtures for the fault tests: a real SMTP server on loopback, the test's own view of the database that
the server processes use (to count what was stored, by the same models), and for the tests that search
everything that left the system (tests/faults/system.py): the app's configuration against the loopback
fakes, a capture of every log record, a webhook receiver."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.config import Config
from inbox import db
from tests.fakes.apns import ApnsKey, FakeApns
from tests.fakes.certs import CertPaths
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.faults.system import PUBLIC_URL, Logs, Receiver
from tests.gateway.pushkit import push_config


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[str]:
    """The database under test, opened in this process too (read-only use: counting rows)."""
    await db.connect(db_url)
    yield db_url
    await db.disconnect()


@pytest.fixture
def config(
    db_url: str,
    tmp_path: Path,
    smtp: FakeSmtp,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fcm_credentials_file: Path,
    apns_key: ApnsKey,
    tls_certs: CertPaths,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    return push_config(
        db_url,
        tmp_path,
        fake_apns,
        fake_fcm,
        fcm_credentials_file,
        apns_key,
        tls_certs,
        monkeypatch,
        smtp_port=smtp.port,
        public_url=PUBLIC_URL,
    ).with_overrides(
        webhook_allow_private=True,  # the webhook receiver listens on loopback
        webpush_allow_private=True,  # and so does the browser push service
        log_format="json",  # the access lines too: the log searches see what a JSON log would hold
    )


@pytest.fixture
def logs() -> Iterator[Logs]:
    root = logging.getLogger()
    handler = Logs()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.fixture
async def receiver(aiohttp_server: Any) -> Receiver:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hooks/securemsg", r.handle)
    server = await aiohttp_server(app)
    r.url = str(server.make_url("/hooks/securemsg"))
    return r
