"""The client address of a request: what every per-IP limit counts and every audit row records.

Behind a reverse proxy every request arrives from the proxy's address, so without help all the practice's
people would share one address: one stranger's failed sign-ins would slow everybody down. A proxy says who
it forwarded for in `X-Forwarded-For`, but anyone can send that header, so it is believed only from the
peers named in SECUREMSG_TRUSTED_PROXIES, and only its right-most address that is not itself one of them:
everything left of that was written by the client, and a client may write anything there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

from gateway.config import Network
from gateway.keys import CONFIG

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR = "X-Forwarded-For"


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 203.0.113.5:5555
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address_of(peer: str | None, forwarded_for: Iterable[str], proxies: tuple[Network, ...]) -> str:
    """The client address, from the peer's address and the X-Forwarded-For headers it sent."""
    if peer is None:
        return "unknown"
    if not proxies:  # the usual case: no address to parse (every request asks, and parsing is most of it)
        return peer
    peer_address = _address(peer)
    if peer_address is None or not _trusted(peer_address, proxies):
        return peer
    hops = [hop for header in forwarded_for for hop in header.split(",")]
    client = peer_address
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:  # the proxy passed on something that is no address: go no further
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


def client_address(request: web.Request) -> str:
    """The one answer to "who is asking" for limits and audit rows (see the module's note)."""
    return client_address_of(
        request.remote, request.headers.getall(FORWARDED_FOR, ()), request.app[CONFIG].trusted_proxies
    )
