"""`securemsg serve --dev-mail` (and `demo`): a built-in SMTP sink and `/dev/mail` to read what it got.

The sink (`mailer.devsink.DevMailSink`) listens where the gateway sends its mail (SECUREMSG_SMTP_HOST and
_PORT) and keeps every message in a Maildir under SECUREMSG_DEV_MAIL_DIR. The routes exist only with
`--dev-mail` (`create_app` adds them then); without it they are 404 like any unknown path.

A message's page shows its text part with the links made clickable. Its HTML part is shown in a sandboxed
iframe fed by a separate route whose own CSP allows the email's inline styles and nothing else: no script,
no requests anywhere, links only opening in a new tab.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.config import ConfigError
from gateway.keys import CONFIG, SERVICES
from gateway.templating import render_page
from mailer.devsink import DevMailSink, StoredMail, get_message, list_messages

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

_KEY = re.compile(r"^[A-Za-z0-9._,=\\-]{1,200}$")
_URL = re.compile(r"https?://[^\s<>\"']+")
_FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)


async def dev_mail_sink(app: web.Application) -> AsyncIterator[None]:
    """A part (gateway.app.PARTS): runs the sink only when the app was made with dev_mail=True."""
    if not app[SERVICES].get("dev_mail"):
        yield
        return
    config = app[CONFIG]
    # aiosmtpd logs every SMTP command at INFO, addresses included; what arrived is on /dev/mail anyway.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    sink = DevMailSink(config.dev_mail_dir, host=config.smtp_host, port=config.smtp_port)
    try:
        await sink.start()
    except OSError as exc:
        raise ConfigError(
            f"--dev-mail: the SMTP sink cannot listen on {config.smtp_host}:{config.smtp_port} "
            f"({exc.strerror}); set SECUREMSG_SMTP_PORT to a free port"
        ) from None
    log.info("dev mail: SMTP sink on %s:%d, keeping mail in %s", sink.host, sink.port, sink.maildir)
    app[SERVICES]["dev_mail_sink"] = sink
    try:
        yield
    finally:
        await sink.stop()


def linkify(text: str) -> str:
    """Escape `text`, then make its http(s) URLs clickable (the escaped URL is both href and label)."""
    escaped = html.escape(text, quote=True)
    return _URL.sub(lambda m: f'<a href="{m[0]}" rel="noreferrer">{m[0]}</a>', escaped)


@routes.get("/dev/mail")
async def mail_list(request: web.Request) -> web.Response:
    maildir = request.app[CONFIG].dev_mail_dir
    messages = await asyncio.to_thread(list_messages, maildir, 200)
    return render_page("dev/mail_list.html", {"messages": messages, "maildir": str(maildir)})


async def _message(request: web.Request) -> StoredMail:
    key = request.match_info["key"]
    if not _KEY.match(key):
        raise web.HTTPNotFound()
    found = await asyncio.to_thread(get_message, request.app[CONFIG].dev_mail_dir, key)
    if found is None:
        raise web.HTTPNotFound()
    return found


@routes.get("/dev/mail/{key}")
async def mail_message(request: web.Request) -> web.Response:
    mail = await _message(request)
    return render_page(
        "dev/mail_message.html",
        {"mail": mail, "text_html": linkify(mail.text) if mail.text else "", "has_html": bool(mail.html)},
    )


@routes.get("/dev/mail/{key}/html")
async def mail_html(request: web.Request) -> web.Response:
    mail = await _message(request)
    if not mail.html:
        raise web.HTTPNotFound()
    return web.Response(
        text=mail.html,
        content_type="text/html",
        charset="utf-8",
        headers={"Content-Security-Policy": _FRAME_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )
