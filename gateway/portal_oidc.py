"""The portal's "Sign in with Google" (OpenID Connect, authorization code with PKCE), beside Instant Sign In.

- `POST /portal/oidc/start` (the button on the sign-in and expired-link pages, with the pre-session form
  token) starts an attempt (`inbox.oidc_accounts`) and sends the browser to the provider.
- `GET /portal/oidc/callback` takes the attempt once, only in the browser that started it, exchanges the
  code (gateway.oidc), verifies the ID token, and signs in whom it matches, the way an Instant Sign In does.
  A person the token does not match, or who may not use the portal, sees exactly the answer Instant Sign In
  gives for an unknown address (and is sent an Instant Sign In link, as that form would): nothing tells
  whether the address is known. A broken attempt (replayed, expired, another browser's, a token that does
  not verify) gets one "could not sign you in" page that does not depend on whose it was.
- `POST /portal/oidc/choose`: one Google account may be a client at two practices; the browser picks one.
- `GET /portal/account`, `POST /portal/oidc/link`, `POST /portal/oidc/unlink`: a signed-in client links
  their Google account (then (issuer, subject) is matched first, whatever their email there becomes) or
  unlinks it.

All of it is 404 while SECUREMSG_OIDC_CLIENT_ID is unset. Every sign-in, link, unlink and refusal of a
person is an audit row (R24) in that person's practice's chain.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING

from aiohttp import web

from gateway.auditing import audit_request
from gateway.cookies import del_cookie, read_cookie, set_cookie
from gateway.keys import CONFIG, CTX, DISPATCHER
from gateway.limits import client_ip, retry_after
from gateway.oidc import (
    OIDC,
    CodeRefused,
    Identity,
    OidcClient,
    ProviderUnavailable,
    TokenRefused,
    unverified_claims,
)
from gateway.portal_session import (
    csrf_failed,
    form_csrf_ok,
    person_of,
    portal_page,
    portal_principal,
    read_form,
    remember_next,
    session_csrf_ok,
    start_session_for,
    take_next,
)
from gateway.portal_signin import sign_in_page
from gateway.templating import see_other
from inbox import audit, db, links, oidc_accounts, portal
from inbox.audit import Actor
from inbox.ids import id_from_text
from portal_links import new_token

if TYPE_CHECKING:
    from inbox.models import Participant

log = logging.getLogger(__name__)
routes = web.RouteTableDef()

# The browser's half of an attempt: HttpOnly, SameSite=Lax (sent on the provider's top-level redirect back),
# only to /portal/oidc.
BROWSER_COOKIE = "securemsg_oidc"
BROWSER_PATH = "/portal/oidc"
ANONYMOUS = Actor(None, "anonymous")


def _client(request: web.Request) -> OidcClient:
    client = request.app.get(OIDC)
    if client is None:
        raise web.HTTPNotFound()
    return client


def _redirect_uri(request: web.Request) -> str:
    # From the configured public URL, never from the request's Host header.
    return request.app[CTX].public_url + "/portal/oidc/callback"


def _failed(request: web.Request, *, status: int = 400, unavailable: bool = False) -> web.Response:
    """One page for every attempt that broke; nothing on it depends on whose it was."""
    return portal_page(request, "portal/oidc_failed.html", status=status, unavailable=unavailable)


async def _begin(request: web.Request, purpose: str, participant_id: int | None = None) -> web.Response:
    client = _client(request)
    ctx = request.app[CTX]
    browser = read_cookie(request, BROWSER_COOKIE, BROWSER_PATH)
    if not oidc_accounts.well_formed(browser):
        browser = new_token(24)  # kept when present, so two tabs' attempts do not undo each other
    assert browser is not None
    state = await oidc_accounts.begin(ctx, browser, purpose, participant_id)
    try:
        url = await client.authorization_url(
            state=state,
            nonce=oidc_accounts.derived(ctx, state, "nonce"),
            verifier=oidc_accounts.derived(ctx, state, "pkce"),
            redirect_uri=_redirect_uri(request),
        )
    except ProviderUnavailable as exc:
        log.warning("Sign in with Google is unavailable: %s", exc)
        return _failed(request, status=503, unavailable=True)
    # Not a 303 to the provider: the pages' CSP (form-action 'self') stops a form's redirect to another site.
    resp = portal_page(request, "portal/oidc_continue.html", url=url, headers={"Refresh": f"0;url={url}"})
    set_cookie(request, resp, BROWSER_COOKIE, browser, oidc_accounts.ATTEMPT_TTL_S, path=BROWSER_PATH)
    return resp


# --- signing in -----------------------------------------------------------------------------------------


@routes.post("/portal/oidc/start")
async def start(request: web.Request) -> web.Response:
    _client(request)
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return csrf_failed(request)
    wait = await retry_after(request, "oidc_start")
    if wait:
        return sign_in_page(
            request,
            status=429,
            error="Too many sign-in attempts. Try again in a few minutes.",
            headers={"Retry-After": str(int(wait))},
        )
    resp = await _begin(request, oidc_accounts.SIGNIN)
    remember_next(request, resp, form.get("next"))  # back to the page they came for, as Instant Sign In does
    return resp


@routes.get("/portal/oidc/callback")
async def callback(request: web.Request) -> web.Response:
    client = _client(request)
    ctx = request.app[CTX]
    attempt = await oidc_accounts.take(
        ctx, request.query.get("state"), read_cookie(request, BROWSER_COOKIE, BROWSER_PATH)
    )
    if attempt is None:
        log.info("OIDC callback refused: its state is unknown, used, expired or another browser's")
        return _failed(request)
    code = request.query.get("code", "")
    if request.query.get("error") or not code or len(code) > 2048:
        return _failed(request)  # cancelled at the provider, or refused there
    state = request.query["state"]
    id_token = ""
    try:
        id_token = await client.exchange(
            code=code, verifier=oidc_accounts.derived(ctx, state, "pkce"), redirect_uri=_redirect_uri(request)
        )
        identity = await client.verify(id_token, oidc_accounts.derived(ctx, state, "nonce"))
    except CodeRefused as exc:
        log.info("OIDC callback refused: the token endpoint said %s", exc)
        return _failed(request)
    except TokenRefused as exc:
        log.warning("OIDC callback refused: the ID token failed its %s check", exc.check)
        await _audit_refused_token(request, client, id_token, exc.check)
        return _failed(request)
    except ProviderUnavailable as exc:
        log.warning("Sign in with Google is unavailable: %s", exc)
        return _failed(request, status=503, unavailable=True)
    if attempt.purpose == oidc_accounts.LINK:
        return await _finish_link(request, attempt.participant_id, identity)
    found = await oidc_accounts.match(
        identity.issuer, identity.subject, identity.email, identity.email_verified
    )
    for person, reason in found.refused:
        await _audit_refused(request, person, {"reason": reason, "match": found.how})
    if not found.people:
        return await _not_known(request, identity)
    if len(found.people) == 1:
        return await _signed_in(request, found.people[0], found.how)
    await oidc_accounts.offer_choice(attempt, found.people)
    choices = [{"id": p.id, "practice": await portal.practice_name(p)} for p in found.people]
    return portal_page(request, "portal/oidc_choose.html", state=state, choices=choices)


@routes.post("/portal/oidc/choose")
async def choose(request: web.Request) -> web.Response:
    _client(request)
    form = await read_form(request)
    if not form_csrf_ok(request, form.get("csrf", "")):
        return csrf_failed(request)
    person = await oidc_accounts.take_choice(
        request.app[CTX],
        form.get("state"),
        read_cookie(request, BROWSER_COOKIE, BROWSER_PATH),
        id_from_text(form.get("participant", "")),
    )
    if person is None:
        return _failed(request)
    return await _signed_in(request, person, "choice")


async def _signed_in(request: web.Request, person: Participant, how: str) -> web.Response:
    resp = see_other("/portal")
    resp.headers["Location"] = take_next(request, resp)
    audited = functools.partial(
        audit_request, request, person, "auth.oidc_sign_in", "participant", person.id, {"match": how}
    )
    await start_session_for(request, resp, person, request.app[CTX].session_ttl_s, audited=audited)
    del_cookie(request, resp, BROWSER_COOKIE, BROWSER_PATH)
    return resp


async def _not_known(request: web.Request, identity: Identity) -> web.Response:
    """Instant Sign In's answer for an unknown address, word for word; and, as that form would, an Instant
    Sign In link for the address (which goes nowhere unless someone there may use the portal)."""
    email = links.normalise_email(identity.email or "")
    if email and not await retry_after(request, "signin_link", f"{email} from {client_ip(request)}"):
        await links.request_signin(request.app[CTX], email)
        request.app[DISPATCHER].wake()
    resp = sign_in_page(request, sent=True)
    del_cookie(request, resp, BROWSER_COOKIE, BROWSER_PATH)
    return resp


# --- audit rows for refusals ------------------------------------------------------------------------------


async def _audit_refused(request: web.Request, person: Participant, detail: dict[str, str]) -> None:
    await audit.record(
        request.app[CTX],
        person.practice_id,
        ANONYMOUS,
        "auth.oidc_refused",
        "participant",
        person.id,
        detail,
        client_ip(request),
    )


async def _audit_refused_token(request: web.Request, client: OidcClient, id_token: str, check: str) -> None:
    """A token that did not verify, in the chains of whomever it claims to be (by its unverified subject or
    email): a forged token aimed at a client shows in that client's practice's log."""
    claims = unverified_claims(id_token)
    for person in await oidc_accounts.claimed_by(client.issuer, claims.get("sub"), claims.get("email")):
        await _audit_refused(request, person, {"reason": "invalid_token", "check": check})


# --- linking and unlinking ------------------------------------------------------------------------------


@routes.get("/portal/account")
async def account(request: web.Request) -> web.Response:
    client = _client(request)
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    person = person_of(principal)
    linked = await oidc_accounts.linked(person, client.issuer)
    name = request.app[CONFIG].oidc_name  # SECUREMSG_OIDC_NAME: the provider may not be Google
    notice = {"linked": f"Your {name} account is linked.", "unlinked": f"Your {name} account is unlinked."}
    return portal_page(
        request,
        "portal/account.html",
        principal=principal,
        practice_name=await portal.practice_name(person),
        linked=linked,
        notice=notice.get(request.query.get("done", ""), ""),
    )


@routes.post("/portal/oidc/link")
async def link(request: web.Request) -> web.Response:
    _client(request)
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    return await _begin(request, oidc_accounts.LINK, person_of(principal).id)


async def _finish_link(request: web.Request, participant_id: int | None, identity: Identity) -> web.Response:
    principal = await portal_principal(request)
    if principal is None or participant_id is None or person_of(principal).id != participant_id:
        return _failed(request)  # signed out (or in as someone else) since the linking started
    person = person_of(principal)
    async with db.transaction():  # the link and its audit row commit together, or neither does
        await oidc_accounts.link(request.app[CTX], person, identity.issuer, identity.subject)
        await audit_request(request, principal, "auth.oidc_linked", "participant", person.id)
    resp = see_other("/portal/account?done=linked")
    del_cookie(request, resp, BROWSER_COOKIE, BROWSER_PATH)
    return resp


@routes.post("/portal/oidc/unlink")
async def unlink(request: web.Request) -> web.Response:
    client = _client(request)
    principal = await portal_principal(request)
    if principal is None:
        return see_other("/portal/sign-in")
    form = await read_form(request)
    if not session_csrf_ok(principal, form.get("csrf", "")):
        return csrf_failed(request, principal)
    person = person_of(principal)
    async with db.transaction():  # the unlinking and its audit row commit together, or neither does
        if await oidc_accounts.unlink(person, client.issuer):
            await audit_request(request, principal, "auth.oidc_unlinked", "participant", person.id)
    return see_other("/portal/account?done=unlinked")
