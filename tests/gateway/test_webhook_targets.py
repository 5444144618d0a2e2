"""Webhooks reach public addresses only (docs/api.md §3 Integration): refused at creation for address literals
and `localhost`, and at delivery on the address actually connected to; SECUREMSG_WEBHOOK_ALLOW_PRIVATE=1
lifts it. The delivery log never carries a socket error's text."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from aiohttp import web

from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.keys import CTX
from gateway.public_resolver import NotPublic, PublicOnlyResolver
from inbox import webhooks
from inbox.models import Participant
from tests.conftest import Api, build_cast, make_config
from tests.gateway.pushkit import drain
from tests.gateway.test_webhooks import client_writes, deliveries, subscribe

NOT_PUBLIC = [
    "http://localhost:8080/hook",
    "http://LOCALHOST./hook",
    "http://api.localhost/hook",
    "http://127.0.0.1/hook",
    "http://127.8.9.10:9000/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://172.16.0.9/hook",
    "http://192.168.1.1/hook",
    "http://100.64.0.1/hook",
    "https://[fd00::1]/hook",
    "https://[fc00::5]:8443/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://240.0.0.1/hook",
]


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    return make_config(db_url, tmp_path / "var")


class Receiver:
    def __init__(self) -> None:
        self.hits = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.hits += 1
        return web.Response(text="ok")


def own_hostname_address() -> tuple[str, str]:
    """This machine's name and the address it resolves to: a name (no literal to refuse at creation)
    that leads to a non-public address, without any DNS beyond this machine."""
    name = socket.gethostname()
    address = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    assert not webhooks.is_public_address(address), f"{name} resolves to the public {address}"
    return name, address


@pytest.fixture
async def receiver_by_name(aiohttp_server):
    """A receiver listening on the address this machine's name resolves to, and its URL by that name."""
    name, address = own_hostname_address()
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    server = await aiohttp_server(app, host=address)
    return r, f"http://{name}:{server.port}/hook"


@pytest.mark.parametrize("url", NOT_PUBLIC)
async def test_a_non_public_webhook_address_is_refused_at_creation(api, cast, url):
    status, body = await api.post(
        "/webhooks", {"url": url, "events": ["message.created"]}, token=cast.api_key
    )
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["field"]) == ("webhook_url_not_public", "url")
    _, listed = await api.get("/webhooks", token=cast.api_key)
    assert listed["items"] == []


async def test_public_addresses_and_names_are_accepted_at_creation(api, cast):
    for url in ("https://crm.example.org/hooks", "http://93.184.215.14/h", "https://[2606:4700::1111]/h"):
        status, body = await api.post(
            "/webhooks", {"url": url, "events": ["message.created"]}, token=cast.api_key
        )
        assert status == 201, (url, body)


async def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(
    client, api, cast, receiver_by_name
):
    receiver, url = receiver_by_name
    hook_id, _ = await subscribe(api, cast, url, ["message.created"])  # a name: accepted here
    await client_writes(api, cast, "hello")
    await drain(client)
    [refused] = await deliveries(api, cast, hook_id)
    assert (refused["status"], refused["last_error"]) == ("failed", "refused: not a public address")
    assert refused["last_status_code"] is None
    assert receiver.hits == 0  # no request ever left


async def test_a_stored_private_literal_is_refused_at_delivery(client, api, cast, aiohttp_server):
    """A webhook made while the opt-out was on, delivered by a server without it."""
    r = Receiver()
    app = web.Application()
    app.router.add_post("/hook", r.handle)
    server = await aiohttp_server(app)
    owner = await Participant.get(id=cast.id("owner"))
    hook, _ = await webhooks.create_webhook(
        client.server.app[CTX],
        owner.practice_id,
        str(server.make_url("/hook")),
        ["message.created"],
        allow_private=True,
    )
    await client_writes(api, cast, "hello")
    await drain(client)
    [refused] = await deliveries(api, cast, hook.id)
    assert (refused["status"], refused["last_error"]) == ("failed", "refused: not a public address")
    assert r.hits == 0


async def test_the_opt_out_lets_private_receivers_be_used(
    aiohttp_client, db_url, tmp_path, clock, receiver_by_name
):
    receiver, url = receiver_by_name
    config = make_config(db_url, tmp_path / "var", webhook_allow_private=True)
    client = await aiohttp_client(create_app(config, clock=clock))
    api = Api(client)
    cast = await build_cast(api, config, clock)
    hook_id, _ = await subscribe(api, cast, url, ["message.created"])
    status, body = await api.post(
        "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["message.created"]}, token=cast.api_key
    )
    assert status == 201, body
    await client_writes(api, cast, "hello")
    await drain(client)
    [delivered] = await deliveries(api, cast, hook_id)
    assert delivered["status"] == "delivered" and receiver.hits == 1
    assert load_config(
        {"SECUREMSG_WEBHOOK_ALLOW_PRIVATE": "1", "SECUREMSG_VAR_DIR": str(tmp_path)}
    ).webhook_allow_private


async def test_the_resolver_answers_only_public_addresses() -> None:
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(NotPublic):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
        with pytest.raises(NotPublic):
            await resolver.resolve(own_hostname_address()[0], 80, socket.AF_INET)
    finally:
        await resolver.close()
