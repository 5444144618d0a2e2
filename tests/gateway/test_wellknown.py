"""Links that open the apps (issue 17, docs/mobile.md): the apple-app-site-association and assetlinks.json
files, checked against Apple's and Google's published formats, and the settings they are made from.

The formats, as small JSON schemas:
- Apple ("Supporting associated domains"): `applinks.details[]`, each either `appIDs` + `components`
  (iOS 13 and later; a component matches a path with `/`, a query with `?`, a fragment with `#`) or the
  older `appID` + `paths`; an app id is a ten-character team id, a dot, and a bundle id.
- Google (Digital Asset Links, "Verify Android App Links"): a list of statements, each
  `{relation: ["delegate_permission/common.handle_all_urls"], target: {namespace: "android_app",
  package_name, sha256_cert_fingerprints}}`, a fingerprint being 32 colon-separated pairs of capital hex.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema
import pytest

from gateway.config import ConfigError, load_config
from gateway.keys import CTX
from inbox import links, pushes
from inbox.models import Participant
from tests.conftest import make_config
from tests.gateway.test_cli_and_storage import run_cli

CLIENT_IOS = ("ABCDE12345.org.example.securemsg.client", "ABCDE12345.org.example.securemsg.client-beta")
PRACTICE_IOS = ("ABCDE12345.org.example.securemsg.practice",)
CERT_A = ":".join(f"{n:02X}" for n in range(32))
CERT_B = ":".join(f"{255 - n:02X}" for n in range(32))
CERT_P = ":".join("A1" for _ in range(32))

APP_ID = {"type": "string", "pattern": r"^[A-Z0-9]{10}\.[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$"}
COMPONENT = {
    "type": "object",
    "required": ["/"],
    "additionalProperties": False,
    "properties": {
        "/": {"type": "string", "pattern": "^/"},
        "?": {"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]},
        "#": {"type": "string"},
        "exclude": {"type": "boolean"},
        "caseSensitive": {"type": "boolean"},
        "percentEncoded": {"type": "boolean"},
        "comment": {"type": "string"},
    },
}
AASA_SCHEMA = {
    "type": "object",
    "required": ["applinks"],
    "properties": {
        "applinks": {
            "type": "object",
            "required": ["details"],
            "properties": {
                "apps": {"type": "array", "maxItems": 0},
                "details": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "oneOf": [
                            {
                                "type": "object",
                                "required": ["appIDs", "components"],
                                "additionalProperties": False,
                                "properties": {
                                    "appIDs": {"type": "array", "minItems": 1, "items": APP_ID},
                                    "components": {"type": "array", "minItems": 1, "items": COMPONENT},
                                },
                            },
                            {
                                "type": "object",
                                "required": ["appID", "paths"],
                                "additionalProperties": False,
                                "properties": {
                                    "appID": APP_ID,
                                    "paths": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                                },
                            },
                        ]
                    },
                },
            },
        }
    },
}
ASSETLINKS_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["relation", "target"],
        "additionalProperties": False,
        "properties": {
            "relation": {
                "type": "array",
                "items": {"type": "string"},
                "contains": {"const": "delegate_permission/common.handle_all_urls"},
            },
            "target": {
                "type": "object",
                "required": ["namespace", "package_name", "sha256_cert_fingerprints"],
                "additionalProperties": False,
                "properties": {
                    "namespace": {"const": "android_app"},
                    "package_name": {
                        "type": "string",
                        "pattern": r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$",
                    },
                    "sha256_cert_fingerprints": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "pattern": r"^[0-9A-F]{2}(:[0-9A-F]{2}){31}$"},
                    },
                },
            },
        },
    },
}


def check(schema: dict[str, Any], document: Any) -> None:
    jsonschema.Draft202012Validator(schema).validate(document)


def _matches(component: dict[str, Any], url: str) -> bool:
    """Apple's matching for one component: `*` any run of characters, `?` exactly one, `?` as a dict names
    query items that must each match."""
    parts = urlsplit(url)
    if not fnmatch.fnmatchcase(parts.path, component["/"]):
        return False
    query = component.get("?")
    if isinstance(query, dict):
        items = dict(parse_qsl(parts.query, keep_blank_values=True))
        return all(name in items and fnmatch.fnmatchcase(items[name], p) for name, p in query.items())
    return query is None or fnmatch.fnmatchcase(parts.query, query)


def opens_in(details: list[dict[str, Any]], url: str) -> list[str]:
    """The app ids that a tap on `url` opens (the first matching component of each entry decides)."""
    opened = []
    for entry in details:
        for component in entry["components"]:
            if _matches(component, url):
                if not component.get("exclude"):
                    opened += entry["appIDs"]
                break
    return opened


@pytest.fixture
def config(db_url, tmp_path):
    return make_config(
        db_url,
        tmp_path / "var",
        public_url="https://msg.example.org",
        ios_app_ids=CLIENT_IOS,
        ios_practice_app_ids=PRACTICE_IOS,
        android_package="org.example.securemsg.client",
        android_cert_sha256=(CERT_A, CERT_B),
        android_practice_package="org.example.securemsg.practice",
        android_practice_cert_sha256=(CERT_P,),
    )


async def fetch(client, path):
    resp = await client.get(path, allow_redirects=False)
    return resp, await resp.read()


# --- the files ------------------------------------------------------------------------------------------


async def test_apple_app_site_association_is_apples_format_with_the_portal_and_inbox_links(client, api, cast):
    resp, raw = await fetch(client, "/.well-known/apple-app-site-association")
    assert resp.status == 200  # at exactly this path: no redirect, no extension
    assert resp.headers["Content-Type"] == "application/json"
    assert not resp.headers.get("Content-Encoding")
    # Public, and about no one: a verifier may cache it (every other answer is no-store).
    assert resp.headers["Cache-Control"] == "public, max-age=3600"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    document = json.loads(raw)
    check(AASA_SCHEMA, document)
    details = document["applinks"]["details"]
    assert [entry["appIDs"] for entry in details] == [list(CLIENT_IOS), list(PRACTICE_IOS)]

    # The links the server actually sends open the client app: a notification email's, an Instant Sign In
    # email's, a client's push web_link; a team member's push web_link opens the practice app. Each is a
    # route the server answers, so without the app the browser gets the portal or the inbox.
    ctx = client.server.app[CTX]
    person = await Participant.get(id=cast.id("client"))
    member = await Participant.get(id=cast.id("clinician"))
    notify = await links.issue_notify_link(ctx, person, None)
    signin = await links.issue_signin_link(ctx, person)
    for url in (notify, signin, pushes.web_link(ctx, person, 12)):
        assert url.startswith("https://msg.example.org/portal/")
        assert opens_in(details, url) == list(CLIENT_IOS), url
    assert opens_in(details, pushes.web_link(ctx, member, 12)) == list(PRACTICE_IOS)
    resp, _ = await fetch(client, urlsplit(notify).path)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    resp, _ = await fetch(client, urlsplit(signin).path)
    assert resp.status == 200

    # Nothing else is claimed: sign-in forms, the team's pages, the API, resets stay in the browser.
    for url in ("/portal/sign-in", "/portal", "/", "/inbox", "/reset/abc", "/api/v1/auth/magic", "/settings"):
        assert opens_in(details, "https://msg.example.org" + url) == [], url


async def test_assetlinks_is_googles_format_with_both_apps(client):
    resp, raw = await fetch(client, "/.well-known/assetlinks.json")
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json"
    document = json.loads(raw)
    check(ASSETLINKS_SCHEMA, document)
    assert [(s["target"]["package_name"], s["target"]["sha256_cert_fingerprints"]) for s in document] == [
        ("org.example.securemsg.client", [CERT_A, CERT_B]),
        ("org.example.securemsg.practice", [CERT_P]),
    ]


def test_the_schemas_refuse_what_apple_and_google_would():
    """The format checks above can fail: each of these breaks the published format."""
    good_aasa = {"applinks": {"details": [{"appIDs": [CLIENT_IOS[0]], "components": [{"/": "/portal/m/*"}]}]}}
    check(AASA_SCHEMA, good_aasa)
    check(
        AASA_SCHEMA, {"applinks": {"apps": [], "details": [{"appID": CLIENT_IOS[0], "paths": ["/portal/*"]}]}}
    )
    for bad in (
        {"applinks": {"details": [{"appIDs": ["org.example.client"], "components": [{"/": "/portal/m/*"}]}]}},
        {"applinks": {"details": [{"appIDs": [CLIENT_IOS[0]], "components": [{"path": "/portal/m/*"}]}]}},
        {"applinks": {"details": [{"appIDs": [CLIENT_IOS[0]], "paths": ["/portal/*"]}]}},
        {"applinks": {"details": []}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check(AASA_SCHEMA, bad)
    statement = {
        "relation": ["delegate_permission/common.handle_all_urls"],
        "target": {
            "namespace": "android_app",
            "package_name": "org.example.app",
            "sha256_cert_fingerprints": [CERT_A],
        },
    }
    check(ASSETLINKS_SCHEMA, [statement])
    for bad_target in (
        {"sha256_cert_fingerprints": [CERT_A.lower()]},
        {"sha256_cert_fingerprints": [CERT_A.replace(":", "")]},
        {"sha256_cert_fingerprints": [CERT_A[:-3]]},
        {"namespace": "web"},
    ):
        with pytest.raises(jsonschema.ValidationError):
            check(ASSETLINKS_SCHEMA, [{**statement, "target": {**statement["target"], **bad_target}}])
    with pytest.raises(jsonschema.ValidationError):
        check(ASSETLINKS_SCHEMA, [{**statement, "relation": ["delegate_permission/common.get_login_creds"]}])


@pytest.mark.parametrize(
    ("settings", "apple", "google"),
    [
        ({}, 404, 404),
        ({"ios_app_ids": CLIENT_IOS[:1]}, 200, 404),
        ({"ios_practice_app_ids": PRACTICE_IOS}, 200, 404),
        ({"android_package": "org.example.app", "android_cert_sha256": (CERT_A,)}, 404, 200),
    ],
)
async def test_a_platform_without_an_app_claims_no_links(
    aiohttp_client, db_url, tmp_path, clock, settings, apple, google
):
    from gateway.app import create_app

    client = await aiohttp_client(create_app(make_config(db_url, tmp_path / "var", **settings), clock=clock))
    for path, status in (
        ("/.well-known/apple-app-site-association", apple),
        ("/.well-known/assetlinks.json", google),
    ):
        resp, raw = await fetch(client, path)
        assert resp.status == status, path
        body = json.loads(raw)
        if status == 404:
            assert body["error"]["code"] == "not_found" and body["error"]["message"]
        else:
            check(AASA_SCHEMA if "apple" in path else ASSETLINKS_SCHEMA, body)


# --- the settings ---------------------------------------------------------------------------------------


def test_settings_are_read_and_fingerprints_kept_in_capitals(tmp_path: Path) -> None:
    cfg = load_config(
        {
            "SECUREMSG_VAR_DIR": str(tmp_path),
            "SECUREMSG_IOS_APP_IDS": f" {CLIENT_IOS[0]} , {CLIENT_IOS[1]}",
            "SECUREMSG_ANDROID_PACKAGE": "org.example.securemsg.client",
            "SECUREMSG_ANDROID_CERT_SHA256": f"{CERT_A.lower()},{CERT_B}",
        }
    )
    assert cfg.ios_app_ids == CLIENT_IOS and cfg.ios_practice_app_ids == ()
    assert cfg.android_package == "org.example.securemsg.client"
    assert cfg.android_cert_sha256 == (CERT_A, CERT_B)
    assert cfg.android_practice_package is None
    unset = load_config({"SECUREMSG_VAR_DIR": str(tmp_path)})
    assert (unset.ios_app_ids, unset.android_package, unset.android_cert_sha256) == ((), None, ())


BAD_SETTINGS = [
    (
        {"SECUREMSG_ANDROID_PACKAGE": "org.example.app", "SECUREMSG_ANDROID_CERT_SHA256": CERT_A[:-3]},
        "SECUREMSG_ANDROID_CERT_SHA256",
    ),
    (
        {
            "SECUREMSG_ANDROID_PACKAGE": "org.example.app",
            "SECUREMSG_ANDROID_CERT_SHA256": CERT_A.replace(":", ""),
        },
        "32 hex pairs",
    ),
    (
        {
            "SECUREMSG_ANDROID_PACKAGE": "org.example.app",
            "SECUREMSG_ANDROID_CERT_SHA256": CERT_A.replace("1F", "1G"),
        },
        "SECUREMSG_ANDROID_CERT_SHA256",
    ),
    ({"SECUREMSG_ANDROID_PACKAGE": "org.example.app"}, "needs SECUREMSG_ANDROID_CERT_SHA256"),
    ({"SECUREMSG_ANDROID_CERT_SHA256": CERT_A}, "needs SECUREMSG_ANDROID_PACKAGE"),
    ({"SECUREMSG_ANDROID_PACKAGE": "1org.example", "SECUREMSG_ANDROID_CERT_SHA256": CERT_A}, "package name"),
    (
        {
            "SECUREMSG_ANDROID_PRACTICE_PACKAGE": "org.example.practice",
            "SECUREMSG_ANDROID_PRACTICE_CERT_SHA256": "AB:CD",
        },
        "SECUREMSG_ANDROID_PRACTICE_CERT_SHA256",
    ),
    ({"SECUREMSG_IOS_APP_IDS": "org.example.client"}, "SECUREMSG_IOS_APP_IDS"),
    ({"SECUREMSG_IOS_PRACTICE_APP_IDS": "abcde12345.org.example.practice"}, "TEAMID.bundle.id"),
]


@pytest.mark.parametrize(("env", "needle"), BAD_SETTINGS)
def test_bad_app_link_settings_are_refused(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config({"SECUREMSG_VAR_DIR": str(tmp_path), **env})


def test_a_bad_fingerprint_stops_the_server_at_start_with_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli(
        "serve",
        "--port",
        "0",
        env_extra={
            "SECUREMSG_VAR_DIR": str(tmp_path),
            "SECUREMSG_ANDROID_PACKAGE": "org.example.app",
            "SECUREMSG_ANDROID_CERT_SHA256": "14:6D:E9:83",
        },
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "SECUREMSG_ANDROID_CERT_SHA256" in lines[0] and "14:6D:E9:83" in lines[0]
