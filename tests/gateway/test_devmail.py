"""`--dev-mail`: the built-in SMTP sink receives what the gateway sends, and /dev/mail shows it."""

from __future__ import annotations

import re
import socket

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import ConfigError
from gateway.devmail import linkify
from tests.conftest import Api, build_cast, make_config
from tests.faults.procs import Server, server_env
from tests.gateway.mail_helpers import PRACTICE, drain, email_of
from tests.gateway.test_cli_and_storage import run_cli


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def dev_client(aiohttp_client, db_url, tmp_path, clock):
    config = make_config(db_url, tmp_path / "var", smtp_port=free_port(), public_url="http://127.0.0.1:8080")
    client = await aiohttp_client(create_app(config, clock=clock, dev_mail=True))
    return client, config


async def test_without_dev_mail_the_routes_do_not_exist(client):
    for path in ("/dev/mail", "/dev/mail/1.M2P3Q4.host", "/dev/mail/1.M2P3Q4.host/html"):
        resp = await client.get(path)
        assert resp.status == 404


async def test_dev_mail_shows_the_clients_email_and_its_link_opens_the_portal(dev_client, clock):
    client, config = dev_client
    api = Api(client)
    cast = await build_cast(api, config, clock)
    status, conv = await api.post(
        "/conversations",
        {"participant_ids": [cast.id("client")], "body": "CANARY-dev"},
        token=cast.tok("clinician"),
    )
    assert status == 201
    await drain(client)

    resp = await client.get("/dev/mail")
    listing = await resp.text()
    assert resp.status == 200 and f"You have a new secure message from {PRACTICE}" in listing
    key = re.search(r'href="/dev/mail/([^"]+)"', listing)
    assert key
    resp = await client.get(f"/dev/mail/{key.group(1)}")
    html = await resp.text()
    assert resp.status == 200 and "<outbox-" in html.replace("&lt;", "<")
    link = re.search(r'<a href="(http://127\.0\.0\.1:8080/portal/m/[A-Za-z0-9_-]+)"', html)
    assert link, "the link in the text part is clickable"
    assert "CANARY-dev" not in html
    assert '<iframe class="mail-html"' in html and 'sandbox="allow-popups' in html

    frame = await client.get(f"/dev/mail/{key.group(1)}/html")
    assert frame.status == 200
    csp = frame.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert frame.headers["X-Frame-Options"] == "SAMEORIGIN"

    resp = await client.get(link.group(1).removeprefix("http://127.0.0.1:8080"), allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"


async def test_dev_mail_unknown_message_is_404(dev_client):
    client, _ = dev_client
    for path in ("/dev/mail/1.M2P3Q4.nohost", "/dev/mail/..%2F..%2Fsecret.key", "/dev/mail/x/html"):
        resp = await client.get(path)
        assert resp.status == 404


def test_linkify_escapes_before_linking():
    out = linkify('see http://x.test/a?b=1&c=2 <script>alert("x")</script>')
    assert '<a href="http://x.test/a?b=1&amp;c=2" rel="noreferrer">' in out
    assert "<script>" not in out and "&lt;script&gt;" in out


async def start_fails(app):
    runner = web.AppRunner(app)
    try:
        await runner.setup()
    finally:
        await runner.cleanup()


async def test_a_busy_sink_port_stops_the_start_with_one_clear_line(db_url, tmp_path, clock):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = make_config(db_url, tmp_path / "var", smtp_port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="SECUREMSG_SMTP_PORT"):
            await start_fails(create_app(config, clock=clock, dev_mail=True))


async def test_bad_smtp_settings_stop_the_start_with_one_clear_line(db_url, tmp_path, clock):
    config = make_config(db_url, tmp_path / "var", smtp_from="not an address")
    with pytest.raises(ConfigError, match="SECUREMSG_SMTP"):
        await start_fails(create_app(config, clock=clock))


async def test_the_sinks_smtp_library_does_not_log_the_emails_or_their_links_even_at_debug(dev_client, clock):
    """aiosmtpd logs every command, and at DEBUG every line of every email: the links carry tokens."""
    import logging

    class Capture(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.DEBUG)
            self.lines: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.lines.append(record.getMessage())

    client, config = dev_client
    api = Api(client)
    cast = await build_cast(api, config, clock)
    root, capture = logging.getLogger(), Capture()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        status, _ = await api.post(
            "/conversations",
            {"participant_ids": [cast.id("client")], "body": "hi"},
            token=cast.tok("clinician"),
        )
        assert status == 201
        await drain(client)
        logging.getLogger("tests.capture").debug("the capture sees DEBUG records")
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
    listing = await (await client.get("/dev/mail")).text()
    key = re.search(r'href="/dev/mail/([^"]+)"', listing)
    assert key
    html = await (await client.get(f"/dev/mail/{key.group(1)}")).text()
    token = re.search(r"/portal/m/([A-Za-z0-9_-]+)", html)
    message_id = re.search(r"outbox-\d+\.[0-9a-f]+@127\.0\.0\.1", html.replace("&lt;", "<"))
    assert token and message_id and "the capture sees DEBUG records" in capture.lines
    # No line of the email is logged, so neither is its link, in whatever transfer encoding it went; nor
    # the SMTP commands with the client's address.
    needles = (token.group(1), message_id.group(0), await email_of(cast.id("client")))
    assert [line for line in capture.lines if any(n in line for n in needles)] == []


@pytest.mark.parametrize(
    ("command", "host"),
    [
        ("serve", "0.0.0.0"),  # noqa: S104 - what is being refused
        ("serve", "::"),
        ("serve", "192.0.2.10"),
        ("serve", "example.org"),
        ("demo", "0.0.0.0"),  # noqa: S104
    ],
)
def test_dev_mail_is_refused_unless_the_server_listens_on_loopback_only(tmp_path, command, host):
    """/dev/mail hands out every magic link: on an address others can reach, the start is refused."""
    extra = ["--dev-mail"] if command == "serve" else []
    done = run_cli(
        command,
        *extra,
        "--host",
        host,
        "--port",
        str(free_port()),
        env_extra={"SECUREMSG_VAR_DIR": str(tmp_path / "var"), "SECUREMSG_SMTP_PORT": str(free_port())},
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "--dev-mail" in done.stderr and "loopback" in done.stderr
    assert not (tmp_path / "var" / "securemsg.sqlite3").exists()  # refused before anything was done


async def test_dev_mail_on_loopback_starts_and_warns_loudly(tmp_path):
    env = server_env(
        f"sqlite://{tmp_path / 'var' / 'securemsg.sqlite3'}",
        tmp_path / "var",
        SECUREMSG_SMTP_PORT=str(free_port()),
    )
    server = Server(env, tmp_path / "logs", "--dev-mail", "--host", "127.0.0.1", "--no-worker")
    await server.start()
    try:
        warnings = [line for line in server.log_text().splitlines() if " WARNING " in line]
        assert any("DEV MAIL IS ON" in line and "/dev/mail" in line for line in warnings), server.log_text()
    finally:
        await server.stop()
