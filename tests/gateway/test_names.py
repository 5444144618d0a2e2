"""Names of practices and people: one line, no control characters, at most 200 characters, wherever one
is set. A practice's name goes into every email's Subject and From name (never its From address, which is
the server's own); a line break there would start a header of its own."""

from __future__ import annotations

from email.utils import parseaddr
from pathlib import Path

import pytest

from gateway.config import Config
from tests.conftest import Api, Cast
from tests.gateway.mail_helpers import drain, email_of, mail_config, to
from tests.inbox.cli_helper import run_cli

BAD_NAMES = [
    "Riverbend\r\nBcc: everyone@example.org",
    "Riverbend\nCounseling",
    "Tab\tand bell\x07",
    "Esc\x1b[31m",
    "Delete\x7f",
    "Next\x85line",
    "Line\u2028separator",
    "evil\u202egnp.exe",  # a right-to-left override: shows as something else
    "x" * 201,
    "   ",
]


@pytest.fixture
def config(db_url: str, tmp_path: Path, smtp) -> Config:
    return mail_config(db_url, tmp_path, smtp, smtp_from="no-reply@securemsg.example")


def _setters(cast: Cast) -> list[tuple[str, str, dict[str, object]]]:
    client, member = cast.id("client"), cast.id("clinician")
    return [
        ("PATCH", "/practice/settings", {}),
        ("POST", "/team-members", {"email": "new-member@example.org", "roles": ["biller"]}),
        ("PATCH", f"/team-members/{member}", {}),
        ("POST", "/clients", {"email": "new-client@example.net", "primary_clinician_id": member}),
        ("PATCH", f"/clients/{client}", {}),
        ("POST", f"/clients/{client}/contacts", {"email": "new-contact@example.net"}),
    ]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=range(len(BAD_NAMES)))
async def test_a_name_with_control_characters_or_too_long_is_refused_wherever_it_is_set(
    api: Api, cast: Cast, bad: str
) -> None:
    for method, path, rest in _setters(cast):
        status, body = await api.call(method, path, {"name": bad, **rest}, token=cast.api_key)
        assert status == 422, (path, body)
        assert (body["error"]["code"], body["error"]["field"]) == ("invalid_name", "name"), path
    _, settings = await api.get("/practice/settings", token=cast.api_key)
    _, member = await api.get(f"/team-members/{cast.id('clinician')}", token=cast.api_key)
    assert "\n" not in str(settings) and member.get("name", "Clinician") == "Clinician"


async def test_create_practice_refuses_a_name_that_would_break_an_email_header(db_url, tmp_path) -> None:
    code, out, err = await run_cli(
        db_url,
        tmp_path / "var",
        "create-practice",
        "--name",
        "Lakeside\r\nBcc: all@example.org",
        "--owner-name",
        "Lee Owner",
        "--owner-email",
        "lee@lakeside.example",
        "--owner-password",
        "a long enough password",
    )
    assert code == 2 and out == ""
    [said] = [line for line in err.splitlines() if line.startswith("securemsg:")]  # (the rest is logging)
    assert "name" in said and "control characters" in said


async def test_the_practice_name_is_the_emails_from_name_and_the_address_stays_the_servers(
    api: Api, cast: Cast, client, smtp
) -> None:
    name = 'Dr. Ngô & Partners, "Family" Therapy'  # commas, quotes, accents: all fine on one line
    status, body = await api.patch("/practice/settings", {"name": name}, token=cast.api_key)
    assert status == 200, body
    status, _ = await api.post(
        "/conversations", {"participant_ids": [cast.id("client")], "body": "hi"}, token=cast.tok("clinician")
    )
    assert status == 201
    await drain(client)
    [mail] = to(smtp, await email_of(cast.id("client")))
    shown, address = parseaddr(str(mail.message["From"]))
    assert (shown, address) == (name, "no-reply@securemsg.example")
    assert name in str(mail.message["Subject"])
    assert mail.message["Bcc"] is None
