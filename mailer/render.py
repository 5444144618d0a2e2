"""Notification email templates: ``email/{name}.subject.txt``, ``{name}.txt`` and ``{name}.html``.

No email may hold health information (R16), so the renderer takes a fixed, small set of context variables
and refuses anything else: a caller cannot hand message text or a client's name to a template even by
mistake, and a template that reaches for any other variable fails (``StrictUndefined``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

# The shipped templates (``email/`` under this package, so a wheel carries them as package data);
# deployments may point the renderer anywhere else.
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

ALLOWED_VARS: frozenset[str] = frozenset({"practice_name", "link", "expires_text"})


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class EmailRenderer:
    """Renders the email triplets under ``templates_dir / "email"``.

    ``.html`` templates are autoescaped, ``.txt`` ones (subject and text body) are not.
    """

    def __init__(self, templates_dir: Path, *, allowed_vars: frozenset[str] = ALLOWED_VARS) -> None:
        self._allowed_vars = allowed_vars
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(Path(templates_dir) / "email"),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            auto_reload=False,
        )

    @property
    def environment(self) -> jinja2.Environment:
        return self._env

    def render(self, name: str, context: Mapping[str, Any]) -> RenderedEmail:
        """Render template triplet ``name``. Raises ``ValueError`` for a context key outside the allowed
        set, ``jinja2.TemplateNotFound`` for a missing file and ``jinja2.UndefinedError`` when a template
        uses a variable the context does not give."""
        extra = set(context) - self._allowed_vars
        if extra:
            raise ValueError(f"email context may only hold {sorted(self._allowed_vars)}; got {sorted(extra)}")
        ctx = dict(context)
        subject = self._env.get_template(f"{name}.subject.txt").render(ctx)
        return RenderedEmail(
            subject=" ".join(subject.split()),
            text=self._env.get_template(f"{name}.txt").render(ctx),
            html=self._env.get_template(f"{name}.html").render(ctx),
        )
