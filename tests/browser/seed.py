"""A small practice with people's names, for the browser tests (and so the screenshots read naturally)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyotp

from gateway.app import make_context
from inbox import accounts
from inbox.models import Participant

PASSWORD = "correct horse battery"


@dataclass
class Seeded:
    ids: dict[str, int]
    emails: dict[str, str]
    sam_totp_secret: str
    api_key: str

    def code(self, clock: Any) -> str:
        return pyotp.TOTP(self.sam_totp_secret).at(clock.now())


async def seed_practice(config: Any, clock: Any) -> Seeded:
    ctx = make_context(config, clock)
    made = await accounts.create_practice(
        ctx,
        name="Riverbend Counseling",
        owner_name="Dana Whitfield",
        owner_email="dana@riverbend.example",
        owner_password=PASSWORD,
    )
    await accounts.update_settings(ctx, made.practice, {"client_messaging_enabled": True})
    people: dict[str, Participant] = {"dana": made.owner}
    for key, name, email, roles in (
        ("sam", "Dr. Sam Rivera", "sam@riverbend.example", ["clinician"]),
        ("lena", "Dr. Lena Park", "lena@riverbend.example", ["clinician"]),
        ("priya", "Priya Shah", "priya@riverbend.example", ["biller"]),
    ):
        people[key] = await accounts.create_team_member(
            ctx, made.practice.id, name=name, email=email, roles=roles, password=PASSWORD
        )
    for key, name, email, enabled in (
        ("alex", "Alex Morgan", "alex@client.example", True),
        ("jordan", "Jordan Lee", "jordan@client.example", False),
    ):
        people[key] = await accounts.create_client(
            ctx,
            made.practice,
            name=name,
            email=email,
            primary_clinician_id=people["sam"].id,
            messaging_enabled=enabled,
        )
    sam = people["sam"]
    sam_secret = pyotp.random_base32()
    await accounts.set_totp_secret(ctx, sam, sam_secret, last_step=None)
    return Seeded(
        ids={k: p.id for k, p in people.items()},
        emails={k: p.email for k, p in people.items()},
        sam_totp_secret=sam_secret,
        api_key=made.api_key,
    )


async def sign_in(page: Any, base: str, email: str, *, code: str | None = None) -> None:
    await page.goto(base + "/")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    if code is not None:
        await page.wait_for_url("**/sign-in/code**")
        await page.get_by_label("Authentication code").fill(code)
        await page.get_by_role("button", name="Verify and sign in").click()
    await page.wait_for_url("**/inbox**")
