"""The portal's "Sign in with Google" against a real OpenID Connect provider on loopback (tests/fakes/oidc.py).

The browser is aiohttp's test client with its cookie jar: it presses the button, follows the redirect to the
provider, and brings the provider's redirect back to the app, as a browser would. Every refusal is checked
for what the person sees, that no portal session was made, and the audit row it leaves (R24).
"""

from __future__ import annotations

import logging
import re
from html import escape
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.app import create_app
from gateway.auth import PORTAL_COOKIE
from gateway.config import ConfigError, load_config
from gateway.oidc import JWKS_REFETCH_MIN_S
from inbox.models import AuditEvent, AuthToken, OidcIdentity, Participant
from tests.conftest import build_cast
from tests.fakes.oidc import FakeOidc, FakeUser
from tests.gateway.mail_helpers import PUBLIC_URL, csrf_in, drain, email_of, mail_config
from tests.gateway.test_auditing import audit_inserts_fail
from tests.gateway.test_portal import CANARY, ask_for_signin, message_client, page, post_form, strip_tokens

BUTTON = "Sign in with Google"


@pytest.fixture
async def fake_oidc(clock):
    fake = FakeOidc(clock)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def config(db_url, tmp_path, smtp, fake_oidc):
    return mail_config(
        db_url,
        tmp_path,
        smtp,
        oidc_issuer=fake_oidc.issuer,
        oidc_client_id=fake_oidc.client_id,
        oidc_client_secret=fake_oidc.client_secret,
    )


async def start_google(client, from_path="/portal/sign-in"):
    """Press "Sign in with Google" on a page: the app's redirect to the provider."""
    _, html = await page(client, from_path)
    assert BUTTON in html
    resp, html = await press_start(client, html)
    return continue_url(resp, html)


START_FORM = re.compile(
    r'action="/portal/oidc/start"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"'
)


async def press_start(client, html, **fields):
    """Submit the "Sign in with …" form of a page's `html` (with any other `fields`): the app's answer."""
    found = START_FORM.search(html)
    assert found, "no Sign in with ... form"
    return await post_form(client, "/portal/oidc/start", {"csrf": found.group(1), **fields})


def continue_url(resp, html):
    """The provider's URL from the "Continuing to Google" page: its Refresh header and its link agree."""
    assert resp.status == 200, html
    url = resp.headers["Refresh"].removeprefix("0;url=")
    assert f'href="{escape(url)}"' in html
    return url


async def at_provider(client, authorize_url):
    """The provider signs its user in and redirects back: the callback's path and query on the app."""
    resp = await client.session.get(authorize_url, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    back = resp.headers["Location"]
    assert back.startswith(PUBLIC_URL + "/portal/oidc/callback?")
    return back.removeprefix(PUBLIC_URL)


async def google_sign_in(client, from_path="/portal/sign-in"):
    callback = await at_provider(client, await start_google(client, from_path))
    resp, html = await page(client, callback)
    return resp, html, callback


async def audit_rows(action):
    return list(await AuditEvent.filter(action=action).order_by("id"))


def sessions():
    return AuthToken.filter(kind="session", revoked_at=None).count()


# --- signing in -------------------------------------------------------------------------------------------


async def test_r18_sign_in_with_google_starts_a_portal_session_like_instant_sign_in(
    client, api, cast, smtp, fake_oidc
):
    conv = await message_client(api, cast)
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    authorize = await start_google(client)
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert authorize.startswith(fake_oidc.issuer + "/authorize?")
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == PUBLIC_URL + "/portal/oidc/callback"
    assert query["scope"] == "openid email" and query["state"] and query["nonce"]
    resp, _ = await page(client, await at_provider(client, authorize))
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    cookie = resp.cookies[PORTAL_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert fake_oidc.token_outcomes == ["ok"]  # the client secret and the PKCE verifier held
    resp, html = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 200 and CANARY in html
    [row] = await audit_rows("auth.oidc_sign_in")
    assert (row.actor_id, row.target_id, row.detail) == (
        cast.id("client"),
        str(cast.id("client")),
        {"match": "email"},
    )
    # A full session, like Instant Sign In's (not a link's 24 hours): the configured 12 hours.
    [session] = await AuthToken.filter(kind="session", participant_id=cast.id("client"))
    assert (session.expires_at - session.created_at).total_seconds() == 12 * 3600


async def test_sign_in_with_google_returns_to_the_conversation_the_client_came_for(
    client, api, cast, smtp, fake_oidc
):
    conv = await message_client(api, cast)
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    resp, _ = await page(client, f"/portal/c/{conv['id']}")
    _, html = await page(client, resp.headers["Location"])
    found = re.search(
        r'action="/portal/oidc/start".*?name="csrf" value="([^"]+)".*?name="next" value="([^"]+)"', html, re.S
    )
    assert found and found.group(2) == f"/portal/c/{conv['id']}"
    resp, html = await post_form(
        client, "/portal/oidc/start", {"csrf": found.group(1), "next": found.group(2)}
    )
    resp, _ = await page(client, await at_provider(client, continue_url(resp, html)))
    assert resp.status == 303 and resp.headers["Location"] == f"/portal/c/{conv['id']}"
    # Someone else's site cannot choose where it goes: a path that is not the portal's is dropped.
    await page(client, "/portal/sign-out")
    _, html = await page(client, "/portal/sign-in")
    resp, html = await press_start(client, html, next="//evil.example/portal")
    resp, _ = await page(client, await at_provider(client, continue_url(resp, html)))
    assert resp.status == 303 and resp.headers["Location"] == "/portal"


async def test_r10_a_contact_signs_in_with_google_and_not_once_the_clients_messaging_is_off(
    client, api, cast, smtp, fake_oidc
):
    fake_oidc.user = FakeUser("g-contact", (await email_of(cast.id("contact"))).upper())
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    assert (await audit_rows("auth.oidc_sign_in"))[0].actor_id == cast.id("contact")
    await post_form(client, "/portal/sign-out", {"csrf": csrf_in((await page(client, "/portal"))[1])})
    await api.patch(f"/clients/{cast.id('client')}", {"messaging_enabled": False}, token=cast.api_key)
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 200 and "If that address is known to us" in html
    assert PORTAL_COOKIE not in resp.cookies and await sessions() == 0
    [refused] = await audit_rows("auth.oidc_refused")
    assert refused.target_id == str(cast.id("contact")) and refused.detail["reason"] == "no_portal_access"


async def test_the_expired_link_page_offers_sign_in_with_google(client, api, cast, smtp, fake_oidc):
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    resp, html = await page(client, "/portal/m/" + "x" * 43)
    assert resp.status == 404 and "This link no longer works" in html and BUTTON in html
    resp, _, _ = await google_sign_in(client, "/portal/m/" + "x" * 43)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"


async def test_sign_in_with_google_is_off_without_a_client_id(
    aiohttp_client, db_url, tmp_path, smtp, clock, caplog
):
    caplog.set_level(logging.INFO, logger="gateway.oidc")
    client = await aiohttp_client(create_app(mail_config(db_url, tmp_path, smtp), clock=clock))
    assert [r.getMessage() for r in caplog.records if r.name == "gateway.oidc"] == [
        "Sign in with Google is off: SECUREMSG_OIDC_CLIENT_ID is not set"
    ]
    for path in ("/portal/sign-in", "/portal/m/" + "x" * 43):
        _, html = await page(client, path)
        assert "Sign in with" not in html and "/portal/oidc" not in html
    _, html = await page(client, "/portal/sign-in")
    resp, _ = await post_form(client, "/portal/oidc/start", {"csrf": csrf_in(html)})
    assert resp.status == 404
    for path in ("/portal/oidc/callback?state=x&code=y", "/portal/account"):
        resp, _ = await page(client, path)
        assert resp.status == 404


async def test_starting_needs_the_form_token(client, api, cast, fake_oidc):
    resp, html = await post_form(client, "/portal/oidc/start", {"csrf": "forged-forged-forged-forged"})
    assert resp.status == 403 and "Please try again" in html
    assert fake_oidc.discovery_fetches == 0


# --- tokens that do not hold ------------------------------------------------------------------------------

WRONG = {
    "forged": ("forge", True, "signature"),
    "expired": ("claims", {"exp": 0}, "exp"),
    "wrong_audience": ("claims", {"aud": "someone-else.apps.example"}, "aud"),
    "wrong_issuer": ("claims", {"iss": "https://accounts.example"}, "iss"),
    "wrong_nonce": ("claims", {"nonce": "a-nonce-from-another-sign-in"}, "nonce"),
    "issued_long_ago": ("claims", {"iat": 0}, "iat"),
    # Never an unsigned token, never the client secret as an HMAC key (algorithm confusion).
    "unsigned_alg_none": ("attack_alg", "none", "algorithm"),
    "hmac_with_the_client_secret": ("attack_alg", "HS256", "algorithm"),
}


@pytest.mark.parametrize("wrong", sorted(WRONG))
async def test_a_token_that_does_not_verify_signs_nobody_in_and_is_audited(
    client, api, cast, smtp, fake_oidc, clock, wrong
):
    attribute, value, check = WRONG[wrong]
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    if attribute == "claims":
        now = int(clock.now().timestamp())
        value = {k: (now - 3600 if k in ("exp", "iat") else v) for k, v in value.items()}
    setattr(fake_oidc, attribute, value)
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 400
    assert "We could not sign you in with Google" in html and "did not start in this browser" in html
    assert PORTAL_COOKIE not in resp.cookies and await sessions() == 0
    # The forged token claimed to be the client: the client's practice's chain shows the attempt.
    [row] = await audit_rows("auth.oidc_refused")
    assert row.actor_kind == "anonymous" and row.target_id == str(cast.id("client"))
    assert row.detail == {"reason": "invalid_token", "check": check}


async def test_a_discovery_document_naming_another_issuer_is_not_followed(client, api, cast, smtp, fake_oidc):
    """OpenID Connect Discovery §4.3: the document must name the configured issuer exactly, so a document
    served from elsewhere cannot point the sign-in at another provider's endpoints and keys."""
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    fake_oidc.discovery = {"issuer": "https://accounts.google.com"}
    _, html = await page(client, "/portal/sign-in")
    resp, html = await press_start(client, html)
    assert resp.status == 503 and "did not answer just now" in html
    assert "Refresh" not in resp.headers and fake_oidc.issuer not in html
    assert fake_oidc.discovery_fetches == 1 and fake_oidc.authorize_queries == []
    # Once the provider serves its own document, the same button works.
    fake_oidc.discovery = {}
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and await sessions() == 1


async def test_an_unknown_key_id_fetches_the_keys_once_and_at_most_once_a_minute(
    client, api, cast, smtp, fake_oidc, clock
):
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and fake_oidc.jwks_fetches == 1
    # The provider rotates its key: the first token signed with the new one makes us fetch the keys again.
    fake_oidc.rotate()
    fake_oidc.retire_old_keys()
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and fake_oidc.jwks_fetches == 2
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and fake_oidc.jwks_fetches == 2  # cached
    # Tokens naming keys nobody has: one refetch, then none for a minute (the rotation's refetch counted).
    fake_oidc.kid = "no-such-key"
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 400 and fake_oidc.jwks_fetches == 2
    clock.advance(JWKS_REFETCH_MIN_S)
    for fetches in (3, 3, 3):
        resp, _, _ = await google_sign_in(client)
        assert resp.status == 400 and fake_oidc.jwks_fetches == fetches
    clock.advance(JWKS_REFETCH_MIN_S)
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 400 and fake_oidc.jwks_fetches == 4
    checks = [r.detail["check"] for r in await audit_rows("auth.oidc_refused")]
    assert checks == ["unknown_key"] * 5
    assert fake_oidc.discovery_fetches == 1  # the discovery document is cached too


# --- the callback: replays, other browsers, cancelling ------------------------------------------------------


async def test_a_replayed_callback_is_refused(client, api, cast, smtp, fake_oidc):
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    resp, _, callback = await google_sign_in(client)
    assert resp.status == 303 and await sessions() == 1
    resp, html = await page(client, callback)
    assert resp.status == 400 and "We could not sign you in" in html
    assert PORTAL_COOKIE not in resp.cookies and await sessions() == 1
    assert fake_oidc.token_outcomes == ["ok"]  # the replay never reached the provider


async def test_csrf_a_callback_opened_in_another_browser_signs_nobody_in(
    client, api, cast, smtp, fake_oidc, aiohttp_client
):
    """Login CSRF: an attacker starts a sign-in with their own Google account and gets a victim's browser to
    open the callback URL. The state belongs to the attacker's browser (its HttpOnly cookie), so nothing
    happens in the victim's; the attacker's own browser can still finish."""
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    callback = await at_provider(client, await start_google(client))
    victim = await aiohttp_client(client.server)
    resp, html = await page(victim, callback)
    assert resp.status == 400 and "did not start in this browser" in html
    assert PORTAL_COOKIE not in resp.cookies and await sessions() == 0
    resp, _ = await page(client, callback)
    assert resp.status == 303 and await sessions() == 1


async def test_an_attempt_expires_after_ten_minutes(client, api, cast, smtp, fake_oidc, clock):
    fake_oidc.user = FakeUser("g-client-1", await email_of(cast.id("client")))
    callback = await at_provider(client, await start_google(client))
    clock.advance(601)
    resp, _ = await page(client, callback)
    assert resp.status == 400 and await sessions() == 0


@pytest.mark.parametrize(
    "query", ["", "?state=", "?state=" + "x" * 43, "?code=abc", "?state=%00&code=1", "?state=" + "y" * 5000]
)
async def test_malformed_callbacks_get_the_could_not_sign_in_page(client, fake_oidc, query):
    resp, html = await page(client, "/portal/oidc/callback" + query)
    assert resp.status == 400 or (resp.status == 422 and "%00" in query)
    assert await sessions() == 0


async def test_cancelling_at_google_comes_back_to_a_way_in(client, api, cast, smtp, fake_oidc):
    fake_oidc.deny = True
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 400 and "cancelled" in html and 'action="/portal/sign-in"' in html
    assert fake_oidc.token_outcomes == []


async def test_a_wrong_client_secret_is_refused_by_the_provider(
    aiohttp_client, db_url, tmp_path, smtp, clock, fake_oidc
):
    config = mail_config(
        db_url,
        tmp_path,
        smtp,
        oidc_issuer=fake_oidc.issuer,
        oidc_client_id=fake_oidc.client_id,
        oidc_client_secret="not-the-secret",
    )
    client = await aiohttp_client(create_app(config, clock=clock))
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 400 and "We could not sign you in" in html
    assert fake_oidc.token_outcomes == ["invalid_client"]


async def test_a_provider_that_does_not_answer_gets_a_503_page_not_an_error(
    aiohttp_client, db_url, tmp_path, smtp, clock, fake_oidc
):
    port = fake_oidc.port
    await fake_oidc.stop()
    config = mail_config(
        db_url,
        tmp_path,
        smtp,
        oidc_issuer=f"http://127.0.0.1:{port}",
        oidc_client_id="x",
        oidc_client_secret="y",
    )
    client = await aiohttp_client(create_app(config, clock=clock))
    _, html = await page(client, "/portal/sign-in")
    resp, html = await press_start(client, html)
    assert resp.status == 503 and "did not answer just now" in html


# --- who is signed in: no enumeration --------------------------------------------------------------------------


async def test_unknown_unverified_and_turned_off_addresses_get_the_instant_sign_in_answer(
    client, api, cast, smtp, fake_oidc
):
    """Every refusal of a verified token reads exactly like Instant Sign In's answer for an unknown address,
    so Google sign-in tells nobody whether an address is a client here."""
    _, unknown_answer = await ask_for_signin(client, "nobody-at-all@example.net")
    expected = strip_tokens(unknown_answer)
    known = await email_of(cast.id("client"))
    await api.patch(f"/clients/{cast.id('client2')}", {"portal_access": False}, token=cast.api_key)
    answers = []
    for user in (
        FakeUser("g-unknown", "nobody-here@example.net"),
        FakeUser("g-unverified", known, email_verified=False),
        FakeUser("g-client2", await email_of(cast.id("client2"))),
    ):
        fake_oidc.user = user
        resp, html, _ = await google_sign_in(client)
        assert resp.status == 200 and PORTAL_COOKIE not in resp.cookies
        answers.append(strip_tokens(html))
    assert answers == [expected] * 3
    assert await sessions() == 0
    reasons = [(r.target_id, r.detail["reason"]) for r in await audit_rows("auth.oidc_refused")]
    assert reasons == [
        (str(cast.id("client")), "email_unverified"),
        (str(cast.id("client2")), "no_portal_access"),
    ]
    # As the form would have: an Instant Sign In email for the address, which reaches only someone who may
    # use the portal (the unverified token's address belongs to the client).
    await drain(client)
    assert [m.rcpt_tos for m in smtp.received] == [[known]]


async def test_one_google_account_at_two_practices_chooses_where_to_sign_in(
    client, api, cast, smtp, fake_oidc, config, clock
):
    other = await build_cast(api, config, clock, name="Lakeside Therapy")
    shared = "same-person@example.net"
    for who in (cast.id("client"), other.id("client")):
        await Participant.filter(id=who).update(email=shared)
    fake_oidc.user = FakeUser("g-shared", shared)
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 200 and "Choose where to sign in" in html
    assert "Riverbend Counseling" in html and "Lakeside Therapy" in html
    forms = re.findall(
        r'name="csrf" value="([^"]+)">\s*<input type="hidden" name="state" value="([^"]+)">\s*'
        r'<input type="hidden" name="participant" value="(\d+)">',
        html,
    )
    assert [int(f[2]) for f in forms] == sorted([cast.id("client"), other.id("client")])
    csrf, state, _ = forms[0]
    # Only the people this sign-in matched can be chosen.
    resp, _ = await post_form(
        client, "/portal/oidc/choose", {"csrf": csrf, "state": state, "participant": str(cast.id("client2"))}
    )
    assert resp.status == 400 and await sessions() == 0
    resp, _ = await post_form(
        client, "/portal/oidc/choose", {"csrf": csrf, "state": state, "participant": str(other.id("client"))}
    )
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    assert (await audit_rows("auth.oidc_sign_in"))[0].actor_id == other.id("client")
    # Chosen once.
    resp, _ = await post_form(
        client, "/portal/oidc/choose", {"csrf": csrf, "state": state, "participant": str(cast.id("client"))}
    )
    assert resp.status == 400
    assert (
        await AuthToken.filter(kind="session", revoked_at=None, participant_id=cast.id("client")).count() == 0
    )


# --- linking -------------------------------------------------------------------------------------------------


async def link_google(client):
    _, html = await page(client, "/portal/account")
    assert "Link your Google account" in html
    resp, html = await post_form(client, "/portal/oidc/link", {"csrf": csrf_in(html)})
    resp, _ = await page(client, await at_provider(client, continue_url(resp, html)))
    return resp


async def sign_out(client):
    _, html = await page(client, "/portal")
    await post_form(client, "/portal/sign-out", {"csrf": csrf_in(html)})


async def test_a_linked_google_account_signs_in_after_its_email_changes_and_blocks_other_accounts(
    client, api, cast, smtp, fake_oidc
):
    address = await email_of(cast.id("client"))
    fake_oidc.user = FakeUser("g-linked", address)
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303
    _, html = await page(client, "/portal")
    assert 'href="/portal/account"' in html
    resp = await link_google(client)
    assert resp.status == 303 and resp.headers["Location"] == "/portal/account?done=linked"
    _, html = await page(client, "/portal/account?done=linked")
    assert "Your Google account is linked." in html and "Unlink your Google account" in html
    [identity] = await OidcIdentity.all()
    assert (identity.participant_id, identity.issuer, identity.subject) == (
        cast.id("client"),
        fake_oidc.issuer,
        "g-linked",
    )
    await sign_out(client)

    # The email at Google changes: the subject still signs the client in.
    fake_oidc.user = FakeUser("g-linked", "a-new-address@example.org")
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and resp.headers["Location"] == "/portal"
    assert (await audit_rows("auth.oidc_sign_in"))[-1].detail == {"match": "subject"}
    await sign_out(client)

    # Another Google account with the client's (verified) address is not enough now.
    fake_oidc.user = FakeUser("g-someone-else", address)
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 200 and "If that address is known to us" in html and await sessions() == 0
    assert (await audit_rows("auth.oidc_refused"))[-1].detail["reason"] == "linked_to_another_account"

    # Unlinked, the email matches again (and the old subject no longer decides).
    fake_oidc.user = FakeUser("g-linked", address)
    await google_sign_in(client)
    _, html = await page(client, "/portal/account")
    resp, _ = await post_form(client, "/portal/oidc/unlink", {"csrf": csrf_in(html)})
    assert resp.status == 303 and resp.headers["Location"] == "/portal/account?done=unlinked"
    assert await OidcIdentity.all().count() == 0
    await sign_out(client)
    fake_oidc.user = FakeUser("g-someone-else", address)
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303
    actions = [r.action for r in await AuditEvent.filter(action__startswith="auth.oidc_link").order_by("id")]
    assert actions == ["auth.oidc_linked"]
    assert await AuditEvent.filter(action="auth.oidc_unlinked").count() == 1


async def test_a_linked_account_of_a_client_whose_access_is_off_signs_nobody_in(
    client, api, cast, smtp, fake_oidc
):
    fake_oidc.user = FakeUser("g-linked", await email_of(cast.id("client")))
    await google_sign_in(client)
    assert (await link_google(client)).status == 303
    await sign_out(client)
    await api.patch(f"/clients/{cast.id('client')}", {"portal_access": False}, token=cast.api_key)
    resp, html, _ = await google_sign_in(client)
    assert resp.status == 200 and "If that address is known to us" in html and await sessions() == 0
    assert (await audit_rows("auth.oidc_refused"))[-1].detail == {
        "reason": "no_portal_access",
        "match": "subject",
    }


async def test_linking_and_unlinking_need_the_session_and_its_csrf_token(client, api, cast, smtp, fake_oidc):
    resp, _ = await page(client, "/portal/account")
    assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in"
    resp, _ = await post_form(client, "/portal/oidc/link", {"csrf": "x"})
    assert resp.status == 303 and resp.headers["Location"] == "/portal/sign-in"
    fake_oidc.user = FakeUser("g-client", await email_of(cast.id("client")))
    await google_sign_in(client)
    for path in ("/portal/oidc/link", "/portal/oidc/unlink"):
        resp, html = await post_form(client, path, {"csrf": "forged-forged-forged-forged"})
        assert resp.status == 403 and "Please try again" in html
    assert await OidcIdentity.all().count() == 0


async def test_a_link_finished_after_signing_out_links_nothing(client, api, cast, smtp, fake_oidc):
    fake_oidc.user = FakeUser("g-client", await email_of(cast.id("client")))
    await google_sign_in(client)
    _, html = await page(client, "/portal/account")
    resp, html = await post_form(client, "/portal/oidc/link", {"csrf": csrf_in(html)})
    callback = await at_provider(client, continue_url(resp, html))
    await sign_out(client)
    resp, _ = await page(client, callback)
    assert resp.status == 400 and await OidcIdentity.all().count() == 0


# --- configuration ----------------------------------------------------------------------------------------


def env(tmp_path, **values):
    return {"SECUREMSG_VAR_DIR": str(tmp_path / "var"), **values}


def test_oidc_settings_default_to_google_and_off(tmp_path):
    config = load_config(env(tmp_path))
    assert config.oidc_issuer == "https://accounts.google.com" and not config.oidc_enabled
    config = load_config(
        env(
            tmp_path,
            SECUREMSG_OIDC_CLIENT_ID="abc.apps.googleusercontent.com",
            SECUREMSG_OIDC_CLIENT_SECRET="s",
        )
    )
    assert config.oidc_enabled and config.oidc_client_secret == "s"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"SECUREMSG_OIDC_ISSUER": "http://accounts.example"}, "must be an https:// URL"),
        ({"SECUREMSG_OIDC_ISSUER": "accounts.google.com"}, "must be an https:// URL"),
        ({"SECUREMSG_OIDC_ISSUER": "https://idp.example/?x=1"}, "without a query"),
        ({"SECUREMSG_OIDC_CLIENT_ID": "abc"}, "needs SECUREMSG_OIDC_CLIENT_SECRET"),
    ],
)
def test_bad_oidc_settings_are_refused_with_one_sentence(tmp_path, values, words):
    with pytest.raises(ConfigError, match=words):
        load_config(env(tmp_path, **values))


def test_a_loopback_issuer_may_be_plain_http(tmp_path):
    config = load_config(env(tmp_path, SECUREMSG_OIDC_ISSUER="http://127.0.0.1:9999"))
    assert config.oidc_issuer == "http://127.0.0.1:9999"


async def test_r24_a_google_sign_in_link_or_unlink_whose_audit_row_fails_changes_nothing(
    client, api, cast, smtp, fake_oidc, db_url
):
    """Each commits with its audit row or not at all: no unrecorded session, link or unlinking."""
    fake_oidc.user = FakeUser("g-client", await email_of(cast.id("client")))
    async with audit_inserts_fail(db_url):
        resp, _, _ = await google_sign_in(client)
        assert resp.status == 500 and PORTAL_COOKIE not in resp.cookies
    assert await sessions() == 0
    resp, _, _ = await google_sign_in(client)
    assert resp.status == 303 and await sessions() == 1
    assert len(await audit_rows("auth.oidc_sign_in")) == 1

    async with audit_inserts_fail(db_url):
        assert (await link_google(client)).status == 500
    assert await OidcIdentity.all().count() == 0
    assert (await link_google(client)).status == 303
    assert await OidcIdentity.all().count() == 1

    _, html = await page(client, "/portal/account")
    async with audit_inserts_fail(db_url):
        resp, _ = await post_form(client, "/portal/oidc/unlink", {"csrf": csrf_in(html)})
        assert resp.status == 500
    assert await OidcIdentity.all().count() == 1
    resp, _ = await post_form(client, "/portal/oidc/unlink", {"csrf": csrf_in(html)})
    assert resp.status == 303 and await OidcIdentity.all().count() == 0
    assert [r.action for r in await AuditEvent.filter(action__startswith="auth.oidc_").order_by("id")] == [
        "auth.oidc_sign_in",
        "auth.oidc_linked",
        "auth.oidc_unlinked",
    ]
