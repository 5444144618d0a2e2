"""Team sign-in under attack: the lockout after ten failures, and why it cannot lock a person out for good.

- Ten failures lock the account for 15 minutes; during the lockout even the right password is refused
  (answered exactly like a wrong password) and further failures do not extend it; then it opens again.
- Wrong TOTP codes count like wrong passwords.
- An unknown address is never "locked": it answers exactly like a wrong password.
- A device that signed in before (its `device_token`) gets in while an attacker keeps the account locked
  and its per-account limit spent, hour after hour; its own failures are throttled on their own.

The sign-in rate limits themselves are in tests/gateway/test_limits.py.
"""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from gateway.config import Config
from gateway.limits import POLICIES
from inbox.accounts import LOCKOUT_AFTER, LOCKOUT_S
from inbox.models import Participant
from tests.conftest import PASSWORD, make_config

WRONG = "not the password at all"


@pytest.fixture
def config(sqlite_url: str, tmp_path: Path) -> Config:
    return make_config(sqlite_url, tmp_path / "var")


async def clinician_email(api, cast) -> str:
    return (await Participant.get(id=cast.id("clinician"))).email


async def login(api, email: str, password: str, **extra) -> tuple[int, dict]:
    status, body = await api.post("/auth/login", {"email": email, "password": password} | extra)
    return status, body


def code_of(status: int, body: dict) -> str:
    return "ok" if status == 200 else body["error"]["code"]


def next_window(clock, window_s: int = POLICIES["login"]["who"][1]) -> None:
    """To the start of the next rate-limit window, so the lockout, not the rate limit, is what answers."""
    clock.advance(window_s - clock.now().timestamp() % window_s)


async def lock(api, email: str) -> None:
    for _ in range(LOCKOUT_AFTER):
        assert code_of(*await login(api, email, WRONG)) == "invalid_credentials"


async def test_ten_failures_lock_the_account_even_against_the_right_password_then_it_opens(api, cast, clock):
    email = await clinician_email(api, cast)
    next_window(clock)
    for _ in range(LOCKOUT_AFTER - 1):
        assert code_of(*await login(api, email, WRONG)) == "invalid_credentials"
    assert code_of(*await login(api, email, WRONG)) == "invalid_credentials"  # the tenth: now locked
    next_window(clock)
    assert code_of(*await login(api, email, PASSWORD)) == "invalid_credentials"
    # Failures during the lockout are refused the same way and do not extend it.
    assert code_of(*await login(api, email, WRONG)) == "invalid_credentials"
    clock.advance(LOCKOUT_S - 300 - 1)
    assert code_of(*await login(api, email, PASSWORD)) == "invalid_credentials"
    clock.advance(1)
    assert code_of(*await login(api, email, PASSWORD)) == "ok"
    member = await Participant.get(id=cast.id("clinician"))
    assert member.failed_logins == 0 and member.locked_until is None


async def test_fewer_than_ten_failures_then_the_right_password_start_the_count_again(api, cast, clock):
    email = await clinician_email(api, cast)
    next_window(clock)
    for _ in range(LOCKOUT_AFTER - 1):
        await login(api, email, WRONG)
    assert code_of(*await login(api, email, PASSWORD)) == "ok"
    next_window(clock)
    for _ in range(LOCKOUT_AFTER - 1):
        await login(api, email, WRONG)
    assert code_of(*await login(api, email, PASSWORD)) == "ok"  # nine and nine never made ten


async def test_wrong_totp_codes_count_towards_the_lockout(api, cast, clock):
    email = await clinician_email(api, cast)
    status, body = await api.post(
        f"/team-members/{cast.id('clinician')}/totp", {"password": PASSWORD}, token=cast.tok("clinician")
    )
    assert status == 200
    totp = pyotp.TOTP(pyotp.parse_uri(body["provisioning_uri"]).secret)
    wrong = next(
        c
        for c in (f"{n:06d}" for n in range(10**6))
        if not totp.verify(c, for_time=clock.now(), valid_window=1)
    )
    next_window(clock)
    assert code_of(*await login(api, email, PASSWORD)) == "otp_required"  # asking is not a failure
    next_window(clock)
    for _ in range(LOCKOUT_AFTER):
        assert code_of(*await login(api, email, PASSWORD, otp=wrong)) == "invalid_otp"
    next_window(clock)
    assert code_of(*await login(api, email, PASSWORD, otp=totp.at(clock.now()))) == "invalid_credentials"
    clock.advance(LOCKOUT_S)
    assert code_of(*await login(api, email, PASSWORD, otp=totp.at(clock.now()))) == "ok"


async def test_an_unknown_address_is_never_locked_and_answers_like_a_wrong_password(api, cast, clock):
    next_window(clock)
    answers = set()
    for _ in range(LOCKOUT_AFTER):
        status, body = await login(api, "nobody@example.org", WRONG)
        answers.add((status, body["error"]["code"], body["error"]["message"]))
    next_window(clock)
    status, body = await login(api, "nobody@example.org", PASSWORD)  # an account would be locked now
    answers.add((status, body["error"]["code"], body["error"]["message"]))
    email = await clinician_email(api, cast)
    next_window(clock)
    status, body = await login(api, email, WRONG)
    assert answers == {(status, body["error"]["code"], body["error"]["message"])}


async def test_an_attacker_cannot_keep_a_trusted_device_out(api, cast, clock):
    """For an hour an attacker locks the account again every time it opens and spends its per-account
    limit; the person's own device (which signed in before) gets in every time, a new device does not."""
    email = await clinician_email(api, cast)
    status, first = await login(api, email, PASSWORD)
    assert status == 200 and first["device_token"].startswith("smd_")
    device = first["device_token"]
    for _ in range(4):
        next_window(clock)
        await lock(api, email)  # ten wrong passwords: the account is locked, its sign-in limit spent
        assert code_of(*await login(api, email, PASSWORD)) in ("invalid_credentials", "rate_limited")
        status, body = await login(api, email, PASSWORD, device_token=device)
        assert status == 200, body
        assert body["device_token"] == device  # still the same trusted device
        assert (await api.get("/me", token=body["token"]))[0] == 200
        clock.advance(LOCKOUT_S)


async def test_a_trusted_device_is_throttled_on_its_own_and_cannot_lock_the_account(api, cast, clock):
    email = await clinician_email(api, cast)
    _, first = await login(api, email, PASSWORD)
    device = first["device_token"]
    limit, window = POLICIES["login_device"]["who"]
    clock.advance(window - clock.now().timestamp() % window)
    for _ in range(limit):
        assert code_of(*await login(api, email, WRONG, device_token=device)) == "invalid_credentials"
    resp = await api.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD, "device_token": device}
    )
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    # Those failures did not lock the account for everyone else.
    assert code_of(*await login(api, email, PASSWORD)) == "ok"
    member = await Participant.get(id=cast.id("clinician"))
    assert member.locked_until is None


async def test_a_device_token_works_only_for_its_address_and_cannot_be_forged(api, cast, clock):
    email = await clinician_email(api, cast)
    _, first = await login(api, email, PASSWORD)
    device = first["device_token"]
    nonce, mac = device.removeprefix("smd_").split(".")
    forged = [f"smd_{nonce}.{'0' * len(mac)}", f"smd_other.{mac}", "smd_", device + "x", "x" * 300]
    status, other = await api.get("/team-members", token=cast.api_key)
    owner_email = next(m["email"] for m in other["items"] if m["id"] == cast.id("owner"))
    next_window(clock)
    await lock(api, email)
    await lock(api, owner_email)
    next_window(clock)
    for token in forged:
        assert code_of(*await login(api, email, PASSWORD, device_token=token)) == "invalid_credentials"
    # The clinician's device token does not open the owner's account.
    assert code_of(*await login(api, owner_email, PASSWORD, device_token=device)) == "invalid_credentials"
    assert code_of(*await login(api, email, PASSWORD, device_token=device)) == "ok"


async def test_an_attacker_cannot_keep_a_trusted_browser_out_of_the_team_inbox(client, api, cast, clock):
    """The web inbox's sign-in: the browser keeps its device token in an HttpOnly cookie; while an attacker
    keeps the account locked, that browser signs in and a new browser does not."""
    from gateway.team_signin import DEVICE_COOKIE
    from tests.gateway.pages import cookie, post_sign_in

    email = await clinician_email(api, cast)
    resp = await post_sign_in(client, email, PASSWORD)
    assert resp.status == 303
    set_cookie = next(v for v in resp.headers.getall("Set-Cookie") if v.startswith(DEVICE_COOKIE + "="))
    assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie
    device = cookie(client, DEVICE_COOKIE)
    assert device is not None and device.startswith("smd_")
    for _ in range(3):
        next_window(clock)
        await lock(api, email)
        resp = await post_sign_in(client, email, PASSWORD)
        assert resp.status == 303 and resp.headers["Location"] == "/inbox"
        assert cookie(client, DEVICE_COOKIE) == device  # the same trusted browser
        client.session.cookie_jar.clear()
        resp = await post_sign_in(client, email, PASSWORD)  # a browser that never signed in here
        text = await resp.text()
        assert (resp.status, "The email or password is not right." in text) == (401, True) or (
            resp.status == 429 and "Too many" in text
        )
        client.session.cookie_jar.update_cookies({DEVICE_COOKIE: device})
        clock.advance(LOCKOUT_S)


async def test_the_login_answer_and_request_with_a_device_token_follow_the_openapi_description(api, cast):
    from jsonschema import Draft202012Validator

    from gateway.openapi import document

    doc = document()
    operation = doc["paths"]["/api/v1/auth/login"]["post"]

    def validator(schema: dict) -> Draft202012Validator:
        return Draft202012Validator(dict(schema, components=doc["components"]))

    answer = validator(operation["responses"]["200"]["content"]["application/json"]["schema"])
    request = validator(operation["requestBody"]["content"]["application/json"]["schema"])
    email = await clinician_email(api, cast)
    first_request = {"email": email, "password": PASSWORD}
    status, first = await api.post("/auth/login", first_request)
    assert status == 200
    again_request = first_request | {"device_token": first["device_token"]}
    status, again = await api.post("/auth/login", again_request)
    assert status == 200
    for body in (first_request, again_request):
        assert list(request.iter_errors(body)) == []
    for body in (first, again):
        assert list(answer.iter_errors(body)) == []
