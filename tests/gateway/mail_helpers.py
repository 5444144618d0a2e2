"""Reading what the FakeSmtp received, and driving the portal like a browser would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from gateway.config import Config
from gateway.keys import DISPATCHER
from inbox.models import Participant
from tests.conftest import make_config
from tests.fakes.smtp import FakeSmtp, ReceivedMail

PUBLIC_URL = "http://portal.test"
PRACTICE = "Riverbend Counseling"
_LINK = re.compile(r"http://portal\.test/(?:portal/[ms]/[A-Za-z0-9_-]+|inbox(?:\?conversation=\d+)?)")
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')
_MSG_ID = re.compile(r'name="client_msg_id" value="([^"]*)"')


def mail_config(db_url: str, tmp_path: Path, smtp: FakeSmtp, **overrides: Any) -> Config:
    settings: dict[str, Any] = {"smtp_port": smtp.port, "public_url": PUBLIC_URL} | overrides
    return make_config(db_url, tmp_path / "var", **settings)


async def email_of(who: int) -> str:
    return (await Participant.get(id=who)).email


def to(smtp: FakeSmtp, address: str) -> list[ReceivedMail]:
    return [m for m in smtp.received if m.rcpt_tos == [address]]


def text_of(mail: ReceivedMail) -> str:
    part = mail.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(mail: ReceivedMail) -> str:
    part = mail.message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def link_in(mail: ReceivedMail) -> str:
    """The one link the email carries (the same in its text and its HTML part)."""
    found = set(_LINK.findall(text_of(mail)))
    assert len(found) == 1, found
    link = found.pop()
    assert link in html_of(mail)
    return link


def path_of(link: str) -> str:
    return link.removeprefix(PUBLIC_URL)


def message_ids(smtp: FakeSmtp) -> list[str]:
    return [str(m.message["Message-ID"]) for m in smtp.received]


def csrf_in(page: str) -> str:
    found = _CSRF.search(page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def client_msg_id_in(page: str) -> str:
    found = _MSG_ID.search(page)
    assert found
    return found.group(1)


async def drain(client: Any) -> int:
    return int(await client.server.app[DISPATCHER].drain())
