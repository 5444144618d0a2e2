"""Push: one provider per service (APNs, FCM, browsers' Web Push), one interface, errors sorted at the edge.

A leaf package: it never imports `inbox`, `gateway` or `mailer`. Callers put only ids and deep links in
`PushMessage.data` and a generic line in `title`; providers serialise exactly that (docs/api.md §5).
"""

from __future__ import annotations

import asyncio

from push.apns import ApnsProvider, ApnsSettings
from push.base import (
    ALERT_FLAG_FOR,
    ALERT_TYPES,
    PUSH_TYPES,
    PushMessage,
    PushProvider,
    PushResult,
    WebPushKeys,
)
from push.fcm import FcmProvider, FcmSettings
from push.webpush import WebPushProvider, WebPushSettings

__all__ = [
    "ALERT_FLAG_FOR",
    "ALERT_TYPES",
    "PUSH_TYPES",
    "ApnsProvider",
    "ApnsSettings",
    "FcmProvider",
    "FcmSettings",
    "PushMessage",
    "PushProvider",
    "PushResult",
    "WebPushKeys",
    "WebPushProvider",
    "WebPushSettings",
    "build_providers",
]


def build_providers(
    apns: ApnsSettings | None, fcm: FcmSettings | None, webpush: WebPushProvider | None = None
) -> dict[str, PushProvider]:
    """The configured providers by name ("apns", "fcm", "webpush"); a None setting leaves that provider off.
    Web Push comes built (its caller chooses the HTTP session its endpoints are reached through).

    Call inside the running loop (e.g. in an aiohttp cleanup_ctx) and `close()` every provider on the way out.
    """
    asyncio.get_running_loop()
    providers: dict[str, PushProvider] = {}
    # APNs first: it opens nothing until the first send, so a bad FCM file cannot leave it dangling.
    if apns is not None:
        providers["apns"] = ApnsProvider(apns)
    if fcm is not None:
        providers["fcm"] = FcmProvider(fcm)
    if webpush is not None:
        providers["webpush"] = webpush
    return providers
