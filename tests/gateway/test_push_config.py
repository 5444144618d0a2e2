"""Configuration → push providers (docs/api.md §2, §5): off without credentials, a bad file stops the start,
TLS trust for APNs follows SSL_CERT_FILE."""

from __future__ import annotations

import logging

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.keys import SERVICES
from inbox import pushes
from tests.conftest import Api, build_cast, make_config
from tests.fakes.fixtures import APNS_KEY_ID, APNS_TEAM_ID, APNS_TOPIC
from tests.gateway.pushkit import apns_token, drain, fcm_token, jobs, register


async def test_providers_without_credentials_are_off_say_so_once_and_their_pushes_are_skipped(
    aiohttp_client, db_url, tmp_path, clock, caplog
):
    caplog.set_level(logging.WARNING, logger="gateway.notify_push")
    config = make_config(db_url, tmp_path / "var")
    client = await aiohttp_client(create_app(config, clock=clock))
    assert set(client.server.app[SERVICES]["push"]) == {"webpush"}  # needs no credentials: always on
    said = [r.getMessage() for r in caplog.records if r.name == "gateway.notify_push"]
    assert len(said) == 2
    assert any("APNs is off" in line for line in said) and any("FCM is off" in line for line in said)

    api = Api(client)
    cast = await build_cast(api, config, clock)
    await register(api, cast.tok("clinician"), "apns", apns_token(40))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(40))
    await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": "hi"}, token=cast.tok("client")
    )
    await drain(client)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "skipped" and "off" in row.last_error


async def start(app: web.Application) -> web.AppRunner:
    runner = web.AppRunner(app)
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def test_a_bad_apns_key_file_stops_the_start_with_one_clear_line(sqlite_url, tmp_path):
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text("this is not a key")
    config = make_config(
        sqlite_url,
        tmp_path / "var",
        apns_key_file=str(key_file),
        apns_key_id=APNS_KEY_ID,
        apns_team_id=APNS_TEAM_ID,
        apns_topic=APNS_TOPIC,
    )
    with pytest.raises(ConfigError) as caught:
        await start(create_app(config))
    assert str(caught.value).startswith("SECUREMSG_APNS_KEY_FILE: ")
    assert "\n" not in str(caught.value)


async def test_a_bad_fcm_credentials_file_stops_the_start(sqlite_url, tmp_path):
    creds = tmp_path / "fcm.json"
    creds.write_text('{"type": "authorized_user"}')
    config = make_config(sqlite_url, tmp_path / "var", fcm_credentials_file=str(creds))
    with pytest.raises(ConfigError) as caught:
        await start(create_app(config))
    assert str(caught.value).startswith("SECUREMSG_FCM_CREDENTIALS_FILE: ")


async def test_apns_trust_follows_ssl_cert_file(
    aiohttp_client, sqlite_url, tmp_path, clock, fake_apns, apns_key, tls_certs, monkeypatch
):
    """Without the test CA in SSL_CERT_FILE the fake's certificate is not trusted: nothing is delivered
    and the row waits for a retry. With it, the same push goes through."""
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_text(apns_key.private_pem)
    config = make_config(
        sqlite_url,
        tmp_path / "var",
        apns_key_file=str(key_file),
        apns_key_id=APNS_KEY_ID,
        apns_team_id=APNS_TEAM_ID,
        apns_topic=APNS_TOPIC,
        apns_endpoint=fake_apns.url,
    )
    empty_store = tmp_path / "no-cas.pem"
    empty_store.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty_store))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    untrusting = await aiohttp_client(create_app(config, clock=clock))
    api = Api(untrusting)
    cast = await build_cast(api, config, clock)
    await register(api, cast.tok("clinician"), "apns", apns_token(41))
    await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": "hi"}, token=cast.tok("client")
    )
    await drain(untrusting)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "pending" and row.attempts == 1
    assert fake_apns.received == []  # the TLS handshake failed before any request
    await untrusting.close()

    monkeypatch.setenv("SSL_CERT_FILE", str(tls_certs.ca_cert))
    trusting = await aiohttp_client(create_app(config, clock=clock))
    clock.advance(1)
    await drain(trusting)
    assert [r.token for r in fake_apns.received] == [apns_token(41)]
    assert (await jobs(pushes.PUSH_NEW_MESSAGE))[0].status == "done"
