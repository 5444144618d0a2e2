"""Message bodies under Hypothesis (R12, R13): any Unicode, control characters, emoji codes and HTML.

- `render_body_html` never lets markup the sender wrote through: parsed with html.parser, the only tag in
  the output is a bare <br> (from a line break), with no attributes, no comments, no declarations.
- A send → read round trip through the HTTP API, on a real server on a loopback port, keeps `body` exactly
  as typed after the documented outer trimming (str.strip), and refuses what R12 refuses (and U+0000 and
  lone surrogates).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config import Config
from inbox.clock import FakeClock
from inbox.messaging import MAX_BODY, render_body_html
from tests.conftest import build_cast, make_config
from tests.gateway.live_server import LiveServer

FRAGMENTS = [
    ":thumbsup:",
    ":smile:",
    ":grin:",
    ":+1:",
    "::",
    ":not_an_emoji:",
    "<script>alert(1)</script>",
    "<b>bold</b>",
    '<img src=x onerror="alert(1)">',
    "<a href='javascript:alert(1)'>x</a>",
    "<br>",
    "<br/>",
    "<!-- c -->",
    "<!DOCTYPE html>",
    "<?php ?>",
    "<![CDATA[x]]>",
    "&lt;b&gt;",
    "&#60;script&#62;",
    "&amp;",
    '"',
    "'",
    "\r\n",
    "\n",
    "\r",
    "\x00",
    "\x1b[31m",
    "\u2028",
    "\u202e",
    "\ufeff",
    "😀",
    "👍🏽",
    "e\u0301",
    # Lone surrogates: JSON can spell them ("\ud800"), though they are no characters (st.text() never makes
    # one); a body with one is refused 422 invalid_character, never a 5xx.
    "\ud800",
    "\udfff",
    "\ud83d",  # the first half of an emoji's pair, alone
]

bodies = st.lists(
    st.one_of(st.text(), st.sampled_from(FRAGMENTS), st.characters(codec="utf-8")), max_size=40
).map("".join)


class Markup(HTMLParser):
    """Collects every piece of markup html.parser finds in a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.other: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag + "/", attrs))

    def handle_endtag(self, tag: str) -> None:
        self.other.append(f"</{tag}>")

    def handle_comment(self, data: str) -> None:
        self.other.append(f"<!--{data}-->")

    def handle_decl(self, decl: str) -> None:
        self.other.append(f"<!{decl}>")

    def unknown_decl(self, data: str) -> None:
        self.other.append(f"<![{data}]>")

    def handle_pi(self, data: str) -> None:
        self.other.append(f"<?{data}>")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def assert_no_sender_markup(rendered: str) -> None:
    parser = Markup()
    parser.feed(rendered)
    parser.close()
    assert all(tag == "br" and attrs == [] for tag, attrs in parser.tags), parser.tags
    assert parser.other == []
    # Outside the line breaks, every < > " ' the sender typed is escaped: shown as text, never markup.
    rest = rendered.replace("<br>", "")
    assert not set(rest) & set("<>\"'"), rendered


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(body=bodies)
def test_r13_body_html_holds_no_markup_the_sender_wrote(body: str) -> None:
    rendered = render_body_html(body)
    assert_no_sender_markup(rendered)
    # The text is all there: undo the line breaks and the escaping and only emoji codes have changed.
    lines = html.unescape(rendered.replace("<br>", "\n"))
    assert lines.count("\n") == body.replace("\r\n", "\n").count("\n")


@pytest.mark.parametrize("code", [":thumbsup:", ":smile:", ":grin:"])
def test_r13_emoji_codes_show_as_emoji(code: str) -> None:
    rendered = render_body_html(f"ok {code}")
    assert code not in rendered and rendered.startswith("ok ") and len(rendered) < len("ok " + code)


# --- the round trip through the API --------------------------------------------------------------------


@pytest.fixture
def live(config: Config) -> Iterator[tuple[LiveServer, dict[str, Any]]]:
    server = LiveServer(make_config(config.database_url, Path(config.var_dir)), FakeClock()).start()
    try:

        async def seed() -> dict[str, Any]:
            api = await server.api()
            cast = await build_cast(api, server.config, server.clock)
            status, body = await api.post(
                "/conversations", {"participant_ids": [cast.id("client")]}, token=cast.tok("clinician")
            )
            assert status == 201, body
            return {
                "conversation": body["id"],
                "clinician": cast.tok("clinician"),
                "client": cast.tok("client"),
            }

        yield server, server.run(seed())
    finally:
        server.stop()


def test_r12_send_and_read_keep_the_body_exactly(live: tuple[LiveServer, dict[str, Any]]) -> None:
    server, seeded = live
    http = requests.Session()
    url = f"{server.base_url}/api/v1/conversations/{seeded['conversation']}/messages"

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(body=bodies, sender=st.sampled_from(["clinician", "client"]))
    def round_trip(body: str, sender: str) -> None:
        server.clock.advance(2)  # past the flood guard on sends, as a person typing would be
        # What the server reads: in JSON a high surrogate then a low one ("\ud83d\ude00") is one character.
        body = json.loads(json.dumps(body))
        sent = http.post(url, json={"body": body}, headers={"Authorization": f"Bearer {seeded[sender]}"})
        expected = body.strip()
        if "\x00" in body or any("\ud800" <= c <= "\udfff" for c in body):
            # PostgreSQL cannot store U+0000 in text, and a lone surrogate is no text: refused wherever text
            # comes in
            assert (sent.status_code, sent.json()["error"]["code"]) == (422, "invalid_character")
            return
        if not expected:
            assert (sent.status_code, sent.json()["error"]["code"]) == (422, "empty_message")
            return
        if len(expected) > MAX_BODY:
            assert (sent.status_code, sent.json()["error"]["code"]) == (422, "message_too_long")
            return
        assert sent.status_code == 201, sent.text
        message = sent.json()["message"]
        assert message["body"] == expected
        reader = "client" if sender == "clinician" else "clinician"
        page = http.get(
            url, params={"limit": 1}, headers={"Authorization": f"Bearer {seeded[reader]}"}
        ).json()
        (read,) = page["items"]
        assert read["id"] == message["id"]
        assert read["body"] == expected
        assert read["body_html"] == render_body_html(expected)
        assert_no_sender_markup(read["body_html"])

    try:
        round_trip()
    finally:
        http.close()
