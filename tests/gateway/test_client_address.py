"""SECUREMSG_TRUSTED_PROXIES: behind a reverse proxy, per-IP limits and audit rows see each client's own
address; a forwarded header from anyone else is ignored, and a bad value stops the start."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pytest
import yaml

from gateway.client_address import client_address_of
from gateway.config import Config, ConfigError, load_config, parse_networks
from gateway.limits import POLICIES
from tests.conftest import PASSWORD, make_config
from tests.gateway.test_cli_and_storage import run_cli

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    # The test client connects from 127.0.0.1: here it plays the reverse proxy.
    return make_config(db_url, tmp_path / "var", trusted_proxies=LOOPBACK)


def _from(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


async def _wrong_passwords(api, n: int, address: str) -> list[int]:
    statuses = []
    for i in range(n):
        status, _ = await api.post(
            "/auth/login", {"email": f"guess{i}@example.org", "password": "x" * 12}, headers=_from(address)
        )
        statuses.append(status)
    return statuses


async def test_behind_a_trusted_proxy_one_strangers_failures_do_not_lock_out_everyone(api, cast, clock):
    limit, window = POLICIES["login"]["ip"]
    clock.advance(window - clock.now().timestamp() % window)
    assert await _wrong_passwords(api, limit, "198.51.100.7") == [401] * limit
    status, body = await api.post(
        "/auth/login", {"email": "guess@example.org", "password": "x" * 12}, headers=_from("198.51.100.7")
    )
    assert status == 429 and body["error"]["code"] == "rate_limited"
    # Someone else behind the same proxy signs in.
    email = next(
        m["email"]
        for m in (await api.get("/team-members", token=cast.api_key))[1]["items"]
        if m["id"] == cast.id("clinician")
    )
    status, body = await api.post(
        "/auth/login", {"email": email, "password": PASSWORD}, headers=_from("203.0.113.20")
    )
    assert status == 200, body


async def test_sign_in_audit_rows_record_the_forwarded_client_address(api, cast):
    email = next(
        m["email"]
        for m in (await api.get("/team-members", token=cast.api_key))[1]["items"]
        if m["id"] == cast.id("clinician")
    )
    # The left-most entry is what the client itself wrote: a trusted proxy's right-most hop wins over it.
    status, _ = await api.post(
        "/auth/login", {"email": email, "password": PASSWORD}, headers=_from("10.9.9.9, 203.0.113.20")
    )
    assert status == 200
    status, body = await api.get("/audit", token=cast.tok("owner"))
    assert status == 200
    sign_ins = [row for row in body["items"] if row["action"] == "auth.login"]
    assert [row["ip"] for row in sign_ins] == ["203.0.113.20"]


async def test_a_forwarded_header_from_an_untrusted_peer_is_ignored(aiohttp_client, db_url, tmp_path, clock):
    from gateway.app import create_app
    from tests.conftest import Api

    api = Api(await aiohttp_client(create_app(make_config(db_url, tmp_path / "var"), clock=clock)))
    limit, window = POLICIES["login"]["ip"]
    clock.advance(window - clock.now().timestamp() % window)
    for i in range(limit):  # a new made-up address every time: still one peer
        status, _ = await api.post(
            "/auth/login", {"email": f"g{i}@example.org", "password": "x" * 12}, headers=_from(f"192.0.2.{i}")
        )
        assert status == 401
    status, _ = await api.post(
        "/auth/login", {"email": "g@example.org", "password": "x" * 12}, headers=_from("192.0.2.250")
    )
    assert status == 429


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        ("127.0.0.1", ["203.0.113.5"], "", "127.0.0.1"),  # no proxies configured: the header means nothing
        ("192.0.2.1", ["203.0.113.5"], "127.0.0.1", "192.0.2.1"),  # the peer is not a trusted proxy
        ("127.0.0.1", ["203.0.113.5"], "127.0.0.1", "203.0.113.5"),
        ("127.0.0.1", ["6.6.6.6, 203.0.113.5"], "127.0.0.1", "203.0.113.5"),  # right-most untrusted
        ("10.0.0.3", ["203.0.113.5, 10.0.0.2"], "10.0.0.0/8", "203.0.113.5"),  # two proxies deep
        ("10.0.0.3", ["203.0.113.5", "10.0.0.2"], "10.0.0.0/8", "203.0.113.5"),  # two header lines
        ("10.0.0.3", ["10.0.0.1, 10.0.0.2"], "10.0.0.0/8", "10.0.0.1"),  # all trusted: the first hop
        ("10.0.0.3", [], "10.0.0.0/8", "10.0.0.3"),  # no header: the proxy itself
        ("10.0.0.3", ["not-an-address"], "10.0.0.0/8", "10.0.0.3"),
        ("::1", ["2001:db8::7"], "::1", "2001:db8::7"),
        ("::ffff:127.0.0.1", ["[2001:db8::7]:443"], "127.0.0.1", "2001:db8::7"),
        (None, ["203.0.113.5"], "127.0.0.1", "unknown"),
    ],
)
def test_the_client_address_is_the_right_most_untrusted_hop(peer, forwarded, proxies, expected) -> None:
    assert client_address_of(peer, forwarded, parse_networks("x", proxies)) == expected


def test_trusted_proxies_are_read_from_the_environment(tmp_path: Path) -> None:
    env = {"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_TRUSTED_PROXIES": "10.0.0.5, 172.28.0.0/16,::1"}
    assert [str(n) for n in load_config(env).trusted_proxies] == ["10.0.0.5/32", "172.28.0.0/16", "::1/128"]
    with pytest.raises(ConfigError, match="SECUREMSG_TRUSTED_PROXIES"):
        load_config(env | {"SECUREMSG_TRUSTED_PROXIES": "10.0.0.5, nginx"})


def test_a_bad_trusted_proxies_value_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    done = run_cli(
        "serve",
        "--port",
        "1",
        env_extra={"SECUREMSG_VAR_DIR": str(tmp_path), "SECUREMSG_TRUSTED_PROXIES": "10.0.0.0/33"},
        timeout=30,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "SECUREMSG_TRUSTED_PROXIES" in done.stderr and "'10.0.0.0/33'" in done.stderr


def test_docker_compose_trusts_its_nginx_and_nginx_appends_the_client_address() -> None:
    """Our own deployment: every gateway believes nginx (and only nginx) at its fixed address, and nginx
    appends the address it saw, so the right-most untrusted entry is the client's."""
    root = Path(__file__).resolve().parents[2]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    nginx_address = compose["services"]["nginx"]["networks"]["default"]["ipv4_address"]
    for name in ("gateway1", "gateway2"):
        env = compose["services"][name]["environment"]
        proxies = parse_networks("SECUREMSG_TRUSTED_PROXIES", env["SECUREMSG_TRUSTED_PROXIES"])
        assert [str(n) for n in proxies] == [f"{nginx_address}/32"], name
    conf = (root / "deploy" / "nginx.conf").read_text()
    blocks = re.findall(r"location [^{]+\{[^}]*\}", conf)
    assert blocks and all("proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in b for b in blocks)
    # What a spoofing client sends stays left of what nginx appends, and is ignored.
    assert client_address_of(nginx_address, ["6.6.6.6, 203.0.113.9"], proxies) == "203.0.113.9"
