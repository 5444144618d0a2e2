"""Webhook deliveries reach public addresses only, checked on the address actually connected to.

Checking a webhook's name when it is created is not enough: the name can resolve to 127.0.0.1 tomorrow, or
to a public address when checked and a private one a moment later (DNS rebinding). So the check sits in the
resolver of the webhook client's connector: aiohttp connects only to the addresses it returns, and keeps
the URL's name for the Host header and TLS SNI. There is no second lookup for an answer to change in.
Address literals never reach a resolver: `refused_literal` checks those before the request.
"""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from inbox.webhooks import host_may_be_public, is_public_address


class NotPublic(OSError):
    """The name resolved only to addresses a webhook may not reach."""


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's default resolver, with every non-public address taken out of its answers."""

    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        public = [r for r in found if is_public_address(r["host"])]
        if not public:
            raise NotPublic("not a public address")
        return public

    async def close(self) -> None:
        await self._inner.close()


def refused_literal(url: str) -> bool:
    """A URL whose host is a non-public address literal (or localhost): refused without connecting."""
    return not host_may_be_public(URL(url).raw_host or "")


def was_refused(exc: BaseException) -> bool:
    """Whether a client error came from `PublicOnlyResolver` refusing every address."""
    seen: Any = exc
    while seen is not None:
        if isinstance(seen, NotPublic):
            return True
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return False
