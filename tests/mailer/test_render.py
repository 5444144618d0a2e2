"""The notification email templates: right wording per rule, and nothing but the three allowed variables."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from mailer.render import ALLOWED_VARS, TEMPLATES_DIR, EmailRenderer

TEMPLATES = ("client_new_message", "unread_reminder", "sign_in_link")
EMAIL_DIR = TEMPLATES_DIR / "email"

# Values no template text could contain by accident, so that any other text found is the template's own.
CANARY = {
    "practice_name": "Qzx Canary Practice",
    "link": "http://127.0.0.1:8080/portal/m/CANARYtok3n-AbC_123",
    "expires_text": "7 canary hours",
}


@pytest.fixture(scope="module")
def renderer() -> EmailRenderer:
    return EmailRenderer(TEMPLATES_DIR)


def test_every_template_triplet_exists() -> None:
    for name in TEMPLATES:
        for suffix in (".subject.txt", ".txt", ".html"):
            assert (EMAIL_DIR / f"{name}{suffix}").is_file(), f"{name}{suffix}"


def test_templates_reference_no_variable_but_the_allowed_three(renderer: EmailRenderer) -> None:
    env = renderer.environment
    paths = sorted(EMAIL_DIR.iterdir())
    assert len(paths) >= 3 * len(TEMPLATES), "the email templates are not where the renderer looks"
    for path in paths:
        source = path.read_text()
        used = jinja2.meta.find_undeclared_variables(env.parse(source))
        assert used <= ALLOWED_VARS, f"{path.name} uses {sorted(used - ALLOWED_VARS)}"
        assert ALLOWED_VARS == {"practice_name", "link", "expires_text"}


@pytest.mark.parametrize("name", TEMPLATES)
def test_canary_render_holds_only_the_given_values(renderer: EmailRenderer, name: str) -> None:
    out = renderer.render(name, CANARY)
    for part in (out.subject, out.text, out.html):
        assert "Qzx Canary Practice" in part
        # No leftover template syntax, and no "{{"-style placeholders for anything else.
        assert "{{" not in part and "{%" not in part and "}}" not in part
    assert CANARY["link"] in out.text
    assert f'href="{CANARY["link"]}"' in out.html
    # Strip the three values; what is left must be the template's fixed wording only (no digits beyond
    # CSS sizes and colours, no addresses, no URLs of its own).
    rest = out.text + out.html
    for value in CANARY.values():
        rest = rest.replace(value, "")
    assert "http" not in rest and "@" not in rest.replace("@media", "")
    assert not re.search(r"<img|url\(|@import|<link|<script", out.html, re.IGNORECASE)


def test_r16_client_new_message(renderer: EmailRenderer) -> None:
    out = renderer.render("client_new_message", {**CANARY, "expires_text": "24 hours"})
    assert out.subject == "You have a new secure message from Qzx Canary Practice"
    for body in (out.text, out.html):
        assert "24 hours" in body
        assert "the message itself is not in this email" in body


def test_r17_unread_reminder_for_client_and_team_member(renderer: EmailRenderer) -> None:
    client = renderer.render("unread_reminder", {**CANARY, "expires_text": "24 hours"})
    assert client.subject == "You have an unread secure message from Qzx Canary Practice"
    assert "24 hours" in client.text and CANARY["link"] in client.text
    # A team member's link goes to the inbox and has no expiry: the template works without expires_text.
    team = renderer.render(
        "unread_reminder", {"practice_name": "Qzx", "link": "http://127.0.0.1:8080/inbox/c/9"}
    )
    assert "http://127.0.0.1:8080/inbox/c/9" in team.text
    assert "works for" not in team.text and "works for" not in team.html


def test_r18_sign_in_link(renderer: EmailRenderer) -> None:
    out = renderer.render("sign_in_link", {**CANARY, "expires_text": "15 minutes"})
    assert out.subject == "Your sign-in link for Qzx Canary Practice"
    for body in (out.text, out.html):
        assert "15 minutes" in body
        assert "only once" in body
        assert "If you did not ask for this, ignore this email" in body


def test_html_is_escaped_text_is_not(renderer: EmailRenderer) -> None:
    out = renderer.render("client_new_message", {**CANARY, "practice_name": 'Dr. "Lee" <b>&</b> Co'})
    assert 'Dr. "Lee" <b>&</b> Co' in out.text
    assert out.subject == 'You have a new secure message from Dr. "Lee" <b>&</b> Co'
    assert "Dr. &#34;Lee&#34; &lt;b&gt;&amp;&lt;/b&gt; Co" in out.html
    assert "<b>&</b>" not in out.html


def test_subject_is_one_line(renderer: EmailRenderer) -> None:
    out = renderer.render("sign_in_link", {**CANARY, "practice_name": "Two\nLines\r\n Practice"})
    assert out.subject == "Your sign-in link for Two Lines Practice"


def test_context_outside_the_allowed_vars_is_refused(renderer: EmailRenderer) -> None:
    with pytest.raises(ValueError, match="message_text"):
        renderer.render("client_new_message", {**CANARY, "message_text": "my diagnosis"})


def test_missing_variable_fails_loudly(renderer: EmailRenderer) -> None:
    with pytest.raises(jinja2.UndefinedError):
        renderer.render("client_new_message", {"practice_name": "P", "link": "L"})


def test_unknown_template(renderer: EmailRenderer) -> None:
    with pytest.raises(jinja2.TemplateNotFound):
        renderer.render("../pages/index", CANARY)


def test_renderer_takes_any_templates_dir(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "x.subject.txt").write_text("Hi {{ practice_name }}\n")
    (tmp_path / "email" / "x.txt").write_text("<{{ link }}>")
    (tmp_path / "email" / "x.html").write_text("<{{ link }}>")
    out = EmailRenderer(tmp_path).render("x", {"practice_name": "P", "link": "a&b"})
    assert (out.subject, out.text, out.html) == ("Hi P", "<a&b>", "<a&amp;b>")
