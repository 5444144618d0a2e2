"""Typed application state (web.AppKey), so nothing hangs on module globals."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.config import Config
from gateway.dispatcher import Dispatcher
from gateway.realtime import Hub
from inbox.context import InboxContext

CONFIG = web.AppKey("config", Config)
CTX = web.AppKey("inbox_context", InboxContext)
HUB = web.AppKey("hub", Hub)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
# Optional services that other parts register (mailer, push providers, dispatcher, rate limiter, ...).
SERVICES = web.AppKey("services", dict[str, Any])
