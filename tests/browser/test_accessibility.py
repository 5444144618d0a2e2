"""axe-core on every page (issue 16), on a desktop and a 390×844 phone: no serious or critical violation.

axe-core is vendored (tests/browser/vendor/axe.min.js, from `npm pack axe-core@4`, MPL-2.0, its licence beside
it); nothing is fetched. The pages' CSP allows scripts from this site only, so these browser contexts
bypass CSP to inject it: the pages themselves are unchanged. Each page is checked as a person first sees
it, after its script has drawn it (its API answers in, no list still busy); and a few in a later state: the
picker with results, a transcript shown, an export ready with its password. The portal's pages that need
an OpenID Connect provider (Sign-in options, Sign in with Google's continuing, choose and failed pages) and its
"form out of date" page are checked in test_oidc.py, each reached through its real flow."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import expect

from gateway.app import make_context
from gateway.auth import PORTAL_COOKIE
from gateway.keys import DISPATCHER
from inbox import accounts, devices, links, messaging, passwords
from inbox.models import Participant
from tests.browser.conftest import DESKTOP, PHONE, base_url, search_people
from tests.browser.seed import PASSWORD, seed_practice, sign_in
from tests.browser.test_portal_screens import APNS_TOKEN, registered

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"

SERIOUS = """async () => {
  const result = await axe.run(document, { resultTypes: ["violations"] });
  return result.violations
    .filter(v => v.impact === "serious" || v.impact === "critical")
    .map(v => ({ id: v.id, impact: v.impact, help: v.help,
                 nodes: v.nodes.slice(0, 4).map(n => n.target.join(" ") + " :: " + n.failureSummary) }));
}"""


DRAWN = "() => document.readyState === 'complete' && !document.querySelector('[aria-busy=true]')"


async def axe_problems(page: Any, path: str) -> list[str]:
    # The page's script draws its lists after its first API answers: wait for those answers and for no list
    # to be marked busy any more, so that axe sees what a person sees.
    await page.wait_for_load_state("networkidle")
    await page.wait_for_function(DRAWN)
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(SERIOUS)
    return [f"{path}: {v['impact']} {v['id']} ({v['help']}): {v['nodes']}" for v in found]


@pytest.mark.parametrize("screen", ["desktop", "phone"])
async def test_every_page_has_no_serious_or_critical_axe_violation(browser, client, config, clock, screen):
    seeded = await seed_practice(config, clock)
    ctx = make_context(config, clock)
    base = base_url(client)
    viewport = PHONE if screen == "phone" else DESKTOP
    dana = await Participant.get(id=seeded.ids["dana"])
    sam = await Participant.get(id=seeded.ids["sam"])
    alex = await Participant.get(id=seeded.ids["alex"])
    opened = await messaging.open_conversation(ctx, sam, [alex.id], "How did the week go? :smile:")
    assert opened.conversation is not None
    conv = opened.conversation.id
    await messaging.send_message(ctx, alex, conv, "Better, thanks.")
    await messaging.set_away(ctx, sam, True, "Back on Monday :sunny:")  # the portal's thread shows the banner
    await devices.register_device(ctx, dana, None, platform="apns", token="d" * 64, app="practice")
    await registered(config, clock, alex.id, "apns", APNS_TOKEN)
    problems: list[str] = []

    async def context() -> Any:
        made = await browser.new_context(
            viewport=viewport, locale="en-US", timezone_id="UTC", bypass_csp=True
        )
        return made, await made.new_page()

    # Signed out: the team's sign-in, its code step, password reset, a dead reset link, and the forms behind a
    # live invitation link and a live Instant Sign In link.
    invited = await passwords.issue_link(ctx, sam, "invite")
    signin = await links.issue_signin_link(ctx, alex)
    out, page = await context()
    for path in ("/", "/reset", "/reset/not-a-real-token", urlsplit(invited).path, urlsplit(signin).path):
        await page.goto(base + path)
        problems += await axe_problems(page, path)
    await page.goto(base + "/")
    await page.get_by_label("Email").fill(seeded.emails["sam"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/sign-in/code**")
    problems += await axe_problems(page, "/sign-in/code")
    # The portal without a session: sign-in, a dead email link.
    for path in ("/portal/sign-in", "/portal/m/not-a-real-token"):
        await page.goto(base + path)
        problems += await axe_problems(page, path)
    await out.close()

    # The owner: every team page.
    team, page = await context()
    await sign_in(page, base, seeded.emails["dana"])
    for path in (
        "/inbox",
        f"/inbox?conversation={conv}",
        "/records",
        f"/records?client={alex.id}",
        "/settings",
        "/settings/people",
        "/settings/api-keys",
        "/settings/audit",
        "/settings/data-export",
        "/account",
        "/account/notifications",
        "/settings/two-step",
    ):
        await page.goto(base + path)
        problems += await axe_problems(page, path)
    await page.goto(base + "/inbox")
    await page.get_by_role("button", name="New message").click()
    await search_people(page, "a")
    await page.locator(".recipient").first.wait_for()
    problems += await axe_problems(page, "/inbox (New message)")
    await page.goto(base + f"/records?client={alex.id}")
    await page.get_by_role("button", name="Show transcript").click()
    await page.locator(".t-msg").first.wait_for()
    problems += await axe_problems(page, "/records (transcript)")
    # An export made and ready: the password with Copy, the download, the list of past exports.
    await page.goto(base + "/settings/data-export")
    await page.get_by_role("button", name="Start export").click()
    await expect(page.locator("#export-status")).to_contain_text("Preparing your export")
    await client.server.app[DISPATCHER].drain()
    await expect(page.locator("#export-status")).to_have_text("Your export is ready.")
    problems += await axe_problems(page, "/settings/data-export (ready)")
    await team.close()

    # A clinician: a page they may not open says so.
    clinician, page = await context()
    await sign_in(page, base, seeded.emails["lena"])
    await page.goto(base + "/settings/data-export")
    problems += await axe_problems(page, "/settings/data-export (refused)")
    await clinician.close()

    # The client in the portal.
    person, page = await context()
    token, _ = await accounts.issue_token(ctx, alex, "session", csrf=True)
    await person.add_cookies([{"name": PORTAL_COOKIE, "value": token, "url": base}])
    for path in (
        "/portal",
        f"/portal/c/{conv}",
        "/portal/c/999999",
        "/portal/new",
        "/portal/notifications",
        "/portal/sign-out",
    ):
        await page.goto(base + path)
        problems += await axe_problems(page, path)
    await person.close()

    assert problems == [], "\n".join(problems)
