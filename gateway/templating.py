"""Server-rendered pages: jinja2 over `gateway/templates/pages/`, autoescaped, strict about undefined names.

The pages carry no inline script or style (the Content-Security-Policy forbids both); their stylesheet and
their small script are files under `gateway/static/`, served at `/static/`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

# Both inside the package, so an installed wheel finds them (pyproject.toml's package-data ships them).
PAGES_DIR = Path(__file__).resolve().parent / "templates" / "pages"
STATIC_DIR = Path(__file__).resolve().parent / "static"


def format_when(value: str | None) -> str:
    """An API timestamp ("2026-01-05T09:00:00Z") for people; the page's script shows it in local time."""
    if not value:
        return ""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return at.strftime("%-d %b %Y, %H:%M UTC")


@functools.cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PAGES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=True),
        undefined=jinja2.StrictUndefined,
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = format_when
    return env


def render_page(
    name: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    html = environment().get_template(name).render(dict(context))
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8", headers=headers)


def see_other(location: str) -> web.Response:
    """A 303 after a form or a link: returned (not raised), so cookies can be set on it."""
    return web.Response(status=303, headers={"Location": location})
