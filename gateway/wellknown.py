"""The files that let the mobile apps open this server's https links (docs/mobile.md).

- `/.well-known/apple-app-site-association` (iOS universal links) and
- `/.well-known/assetlinks.json` (Android App Links),

made from the configuration (SECUREMSG_IOS_APP_IDS, SECUREMSG_ANDROID_PACKAGE and _CERT_SHA256, and the
practice app's SECUREMSG_IOS_PRACTICE_APP_IDS, SECUREMSG_ANDROID_PRACTICE_*). With an app installed, a tap
on a link from an email opens the app, which exchanges the link's token with `POST /api/v1/auth/magic`;
without it, the same link opens the portal in the browser. Each file is 404 while its platform has no app
configured, so a server without apps claims nothing.

Both are fetched by Apple's and Google's verifiers, which follow no redirect and want `application/json`
at exactly these paths. They hold only app identifiers and paths, nothing about anybody, so unlike every
other answer they may be cached.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.keys import CONFIG

routes = web.RouteTableDef()

AASA_PATH = "/.well-known/apple-app-site-association"
ASSETLINKS_PATH = "/.well-known/assetlinks.json"

# The client app's links: the ones in emails, and the conversation pages a push's `web_link` names.
CLIENT_COMPONENTS: list[dict[str, Any]] = [
    {"/": "/portal/m/*", "comment": "A notification link: exchange the token with POST /api/v1/auth/magic."},
    {
        "/": "/portal/s/*",
        "comment": "An Instant Sign In link: exchange the token with POST /api/v1/auth/magic.",
    },
    {"/": "/portal/c/*", "comment": "A conversation (a push's web_link): no token, the app's own session."},
]
# The practice app's: a conversation in the web inbox (a push's `web_link`, an unread reminder's link).
PRACTICE_COMPONENTS: list[dict[str, Any]] = [
    {"/": "/inbox", "?": {"conversation": "?*"}, "comment": "A conversation in the team's inbox."},
]
HANDLE_ALL_URLS = "delegate_permission/common.handle_all_urls"
CACHE = "public, max-age=3600"


def apple_app_site_association(config: Config) -> dict[str, Any] | None:
    """Apple's format since iOS 13: `applinks.details[]`, each with `appIDs` and `components`."""
    details = []
    if config.ios_app_ids:
        details.append({"appIDs": list(config.ios_app_ids), "components": CLIENT_COMPONENTS})
    if config.ios_practice_app_ids:
        details.append({"appIDs": list(config.ios_practice_app_ids), "components": PRACTICE_COMPONENTS})
    return {"applinks": {"details": details}} if details else None


def asset_links(config: Config) -> list[dict[str, Any]] | None:
    """Google's Digital Asset Links statements. Which paths an Android app takes is said in its own
    manifest (intent filters with autoVerify); this file only vouches that the apps are ours."""
    statements = [
        {
            "relation": [HANDLE_ALL_URLS],
            "target": {
                "namespace": "android_app",
                "package_name": package,
                "sha256_cert_fingerprints": list(certs),
            },
        }
        for package, certs in (
            (config.android_package, config.android_cert_sha256),
            (config.android_practice_package, config.android_practice_cert_sha256),
        )
        if package
    ]
    return statements or None


def _answer(document: Any) -> web.Response:
    if document is None:
        return web.json_response(
            {"error": {"code": "not_found", "message": "No app is configured for these links."}}, status=404
        )
    # Exactly `application/json` (no charset parameter): what Apple's verifier asks for.
    return web.Response(
        body=json.dumps(document, indent=2).encode(),
        content_type="application/json",
        headers={"Cache-Control": CACHE},
    )


@routes.get(AASA_PATH)
async def apple_file(request: web.Request) -> web.Response:
    return _answer(apple_app_site_association(request.app[CONFIG]))


@routes.get(ASSETLINKS_PATH)
async def android_file(request: web.Request) -> web.Response:
    return _answer(asset_links(request.app[CONFIG]))
