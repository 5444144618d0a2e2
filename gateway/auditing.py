"""The views' one-line way to write an audit row (R24) for what a request just did."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.keys import CTX
from gateway.limits import client_ip
from inbox import audit
from inbox.accounts import Principal
from inbox.models import AuditEvent, Participant


async def audit_request(
    request: web.Request,
    who: Participant | Principal,
    action: str,
    target_type: str | None = None,
    target_id: int | str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    practice_id = who.practice_id
    return await audit.record(
        request.app[CTX], practice_id, who, action, target_type, target_id, detail, client_ip(request)
    )
