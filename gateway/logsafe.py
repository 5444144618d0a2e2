"""Keeping tokens and health information out of log lines that securemsg does not write itself.

- A 500's traceback: where it failed is what a person fixing it needs; the exception's message is not,
  and it may hold data (asyncpg's DataError quotes the value it refused, a unique violation the key that
  collided, a template error the text around it). `traceback_without_values` keeps the frames and the
  exception types and leaves out every message.
- aiohttp's own log lines: its server logs a bad request's first bytes at ERROR (an over-long request
  line, say `GET /portal/m/<link token>…`), and its web logger the failures of a handler with the request
  in them. `RedactPaths` rewrites every path-like text in their records to its first segment, as the
  access log (which securemsg does not write) would have to.
"""

from __future__ import annotations

import logging
import re
import traceback

# A request path in a log line: a slash, then anything up to a space, a quote or the end. Only the first
# segment is kept (`/portal/…`, `/api/…`): enough to see which part of the server it was about.
_PATH = re.compile(r"(/[A-Za-z0-9_.~%+-]*)/[^\s'\"]*")
_TOKENISH = re.compile(r"[A-Za-z0-9_-]{20,}")  # a link or bearer token, wherever it stands
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal")


def traceback_without_values(exc: BaseException) -> str:
    """Like `traceback.format_exception`, with each exception's message replaced by its type alone."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        chain.append(err)
        seen.add(id(err))
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
    parts = []
    for err in reversed(chain):
        frames = traceback.format_list(traceback.extract_tb(err.__traceback__))
        kind = f"{type(err).__module__}.{type(err).__qualname__}"
        parts.append(
            "Traceback (most recent call last):\n"
            + "".join(frames)
            + f"{kind} (message left out of the log)\n"
        )
    return "\nwhich led to:\n\n".join(parts)


def redact(text: str) -> str:
    return _TOKENISH.sub("[redacted]", _PATH.sub(r"\1/[redacted]", text))


class RedactPaths(logging.Filter):
    """Rewrites a record of aiohttp's loggers so that no path (nor anything token-like) is in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            message += "\n" + traceback_without_values(record.exc_info[1])
        record.msg = redact(message)
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


_FILTER = RedactPaths()


def redact_aiohttp_logs() -> None:
    """Installs the filter on aiohttp's loggers (idempotent); `create_app` calls it."""
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
