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
from tests.conftest import make_config
from tests.fakes.apns import ApnsKey, FakeApns
from tests.fakes.certs import CertPaths
from tests.fakes.fcm import FakeFcm
from tests.fakes.fixtures import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC
from tests.fakes.smtp import FakeSmtp
from tests.faults.system import PUBLIC_URL, Logs, Receiver


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
    key_file = tmp_path / "AuthKey_ABC123DEFG.p8"
    key_file.write_text(apns_key.private_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    return make_config(
        db_url,
        tmp_path / "var",
        smtp_port=smtp.port,
        public_url=PUBLIC_URL,
        apns_key_file=str(key_file),
        apns_key_id=APNS_KEY_ID,
        apns_team_id=APNS_TEAM_ID,
        apns_topic=APNS_TOPIC,
        apns_endpoint=fake_apns.url,
        fcm_credentials_file=str(fcm_credentials_file),
        fcm_endpoint=fake_fcm.url,
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
