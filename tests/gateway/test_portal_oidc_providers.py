"""Sign in with another OpenID Connect provider than Google (issue 17: "any standards-following provider works
(Microsoft, Okta), not only Google").

The loopback provider (tests/fakes/oidc.py) takes two shapes Google's is not:
- like Microsoft Entra ID: the issuer under a path (`/{tenant}/v2.0`), the client secret taken only in the
  token request's form (`client_secret_post`), RS256 keys;
- like Okta's custom authorization servers: the issuer under `/oauth2/default`, the secret only by Basic
  authentication, and ES256 keys.
Each serves its discovery document under its issuer's path and refuses the secret sent the other way, so a
relying party that assumed Google's shape (a bare-host issuer, one way to send the secret, RSA keys) fails
here. The portal names the provider from SECUREMSG_OIDC_NAME, on every page and notice.
"""

from __future__ import annotations

import pytest

from gateway.auth import PORTAL_COOKIE
from inbox.models import AuditEvent, OidcIdentity
from tests.fakes.oidc import FakeOidc, FakeUser
from tests.gateway.mail_helpers import PUBLIC_URL, csrf_in, email_of, mail_config
from tests.gateway.test_portal import CANARY, message_client, page, post_form
from tests.gateway.test_portal_oidc import continue_url, press_start

PROVIDERS = {
    "microsoft": {
        "name": "Microsoft",
        "path": "/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        "auth_methods": ("client_secret_post",),
        "signing": "RS256",
    },
    "okta": {
        "name": "Okta",
        "path": "/oauth2/default",
        "auth_methods": ("client_secret_basic",),
        "signing": "ES256",
    },
}


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request):
    return PROVIDERS[request.param]


@pytest.fixture
async def fake_oidc(clock, provider):
    fake = FakeOidc(
        clock, path=provider["path"], auth_methods=provider["auth_methods"], signing=provider["signing"]
    )
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def config(db_url, tmp_path, smtp, fake_oidc, provider):
    return mail_config(
        db_url,
        tmp_path,
        smtp,
        oidc_issuer=fake_oidc.issuer,
        oidc_client_id=fake_oidc.client_id,
        oidc_client_secret=fake_oidc.client_secret,
        oidc_name=provider["name"],
    )


async def sign_in_with(client, name: str) -> tuple[int, str]:
    """Press "Sign in with <name>", go through the provider and back: the callback's answer."""
    _, html = await page(client, "/portal/sign-in")
    assert f"Sign in with {name}" in html and "Google" not in html
    resp, html = await press_start(client, html)
    return await through_provider(client, continue_url(resp, html))


async def through_provider(client, authorize: str) -> tuple[int, str]:
    resp = await client.session.get(authorize, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    back = resp.headers["Location"]
    assert back.startswith(PUBLIC_URL + "/portal/oidc/callback?")
    resp, html = await page(client, back.removeprefix(PUBLIC_URL))
    return resp.status, resp.headers.get("Location", html)


async def test_a_provider_shaped_unlike_google_signs_a_client_in_links_and_survives_key_rotation(
    client, api, cast, smtp, fake_oidc, provider
):
    name = provider["name"]
    conv = await message_client(api, cast)
    fake_oidc.user = FakeUser("00000000-0000-0000-66f3-3332eca7ea81", await email_of(cast.id("client")))
    assert fake_oidc.issuer.endswith(provider["path"])

    status, where = await sign_in_with(client, name)
    assert (status, where) == (303, "/portal")
    # The discovery document was found under the issuer's path; the secret went the one way it accepts.
    assert fake_oidc.discovery_fetches == 1 and fake_oidc.token_outcomes == ["ok"]
    resp, html = await page(client, f"/portal/c/{conv['id']}")
    assert resp.status == 200 and CANARY in html

    # Linking names the provider, not Google.
    _, html = await page(client, "/portal/account")
    assert f"Link your {name} account" in html and "Google" not in html
    resp, html = await post_form(client, "/portal/oidc/link", {"csrf": csrf_in(html)})
    assert await through_provider(client, continue_url(resp, html)) == (303, "/portal/account?done=linked")
    _, html = await page(client, "/portal/account?done=linked")
    assert f"Your {name} account is linked." in html and "Google" not in html
    [identity] = await OidcIdentity.all()
    assert identity.issuer == fake_oidc.issuer

    # The provider rotates to a new key of its kind: the next sign-in fetches the keys again and holds.
    _, html = await page(client, "/portal")
    await post_form(client, "/portal/sign-out", {"csrf": csrf_in(html)})
    fake_oidc.rotate()
    fake_oidc.retire_old_keys()
    assert await sign_in_with(client, name) == (303, "/portal")
    assert fake_oidc.jwks_fetches == 2
    actions = [r.detail for r in await AuditEvent.filter(action="auth.oidc_sign_in").order_by("id")]
    assert actions == [{"match": "email"}, {"match": "subject"}]

    _, html = await page(client, "/portal/account")
    resp, _ = await post_form(client, "/portal/oidc/unlink", {"csrf": csrf_in(html)})
    _, html = await page(client, resp.headers["Location"])
    assert f"Your {name} account is unlinked." in html and "Google" not in html


async def test_a_forged_token_from_such_a_provider_is_refused(client, api, cast, smtp, fake_oidc, provider):
    fake_oidc.user = FakeUser("someone", await email_of(cast.id("client")))
    fake_oidc.forge = True
    status, html = await sign_in_with(client, provider["name"])
    assert status == 400 and f"We could not sign you in with {provider['name']}" in html
    assert PORTAL_COOKIE not in html
    [row] = await AuditEvent.filter(action="auth.oidc_refused")
    assert row.detail == {"reason": "invalid_token", "check": "signature"}
