"""Helpers for the push tests: an app configured against the loopback APNs and FCM fakes.

Import `config` into a test module to use it: it overrides conftest's, so the `client`, `api` and `cast`
fixtures build an app whose pushes go to the fakes (`fake_apns`, `fake_fcm`, from tests/fakes/fixtures.py):

    from tests.gateway.pushkit import config  # noqa: F401

The APNs fake speaks TLS with a test CA; the provider trusts it the way production trusts a private CA,
through SSL_CERT_FILE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config
from gateway.keys import DISPATCHER
from inbox.models import OutboxJob
from tests.conftest import make_config
from tests.fakes.apns import ApnsKey, FakeApns
from tests.fakes.certs import CertPaths
from tests.fakes.fcm import FakeFcm
from tests.fakes.fixtures import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC

# Message text that must never leave the server in a notification (R19, docs/api.md §5).
CANARY = "CANARY-PHI-7f3a: panic attacks since the divorce"


@pytest.fixture
def config(
    db_url: str,
    tmp_path: Path,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fcm_credentials_file: Path,
    apns_key: ApnsKey,
    tls_certs: CertPaths,
    monkeypatch: pytest.MonkeyPatch,
) -> Config:
    return push_config(
        db_url, tmp_path, fake_apns, fake_fcm, fcm_credentials_file, apns_key, tls_certs, monkeypatch
    )


def push_config(
    db_url: str,
    tmp_path: Path,
    fake_apns: FakeApns,
    fake_fcm: FakeFcm,
    fcm_credentials_file: Path,
    apns_key: ApnsKey,
    tls_certs: CertPaths,
    monkeypatch: pytest.MonkeyPatch,
    **overrides: Any,
) -> Config:
    """The app's configuration with its pushes going to the fakes (and `overrides`, as `make_config`'s)."""
    key_file = tmp_path / "AuthKey_ABC123DEFG.p8"
    key_file.write_text(apns_key.private_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    return make_config(
        db_url,
        tmp_path / "var",
        **overrides,
        apns_key_file=str(key_file),
        apns_key_id=APNS_KEY_ID,
        apns_team_id=APNS_TEAM_ID,
        apns_topic=APNS_TOPIC,
        apns_endpoint=fake_apns.url,
        fcm_credentials_file=str(fcm_credentials_file),
        fcm_endpoint=fake_fcm.url,
    )


def apns_token(n: int) -> str:
    return f"{n:064x}"


def fcm_token(n: int) -> str:
    return f"fcm-device-{n:04d}:APA91b" + "x" * 140


async def register(api: Any, token: str, platform: str, device_token: str, app: str = "practice") -> int:
    status, body = await api.post(
        "/devices", {"platform": platform, "token": device_token, "app": app}, token=token
    )
    assert status == 201, body
    return int(body["id"])


async def drain(client: Any) -> int:
    return await client.server.app[DISPATCHER].drain()


def everything_received(fake_apns: FakeApns, fake_fcm: FakeFcm) -> bytes:
    """Every byte the fakes were sent that could carry content: paths, headers, bodies, token requests."""
    chunks: list[bytes] = []
    for r in fake_apns.received:
        chunks += [r.path.encode(), json.dumps(r.headers).encode(), r.raw_body]
    for f in fake_fcm.received:
        chunks += [json.dumps(f.headers).encode(), json.dumps(f.body).encode()]
    for t in fake_fcm.token_requests:
        chunks.append(json.dumps(t.form).encode())
    return b"\n".join(chunks)


async def jobs(kind: str, **filters: Any) -> list[OutboxJob]:
    return list(await OutboxJob.filter(kind=kind, **filters).order_by("id"))
