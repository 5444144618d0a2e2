"""Log lines: plain text (the default) or one JSON object a line (SECUREMSG_LOG_FORMAT=json), each carrying
the id of the request it was written while serving (docs/operations.md).

The request id comes from the caller's `X-Request-Id` when it is a sane one (a proxy's or a load balancer's,
so one id follows a request through every hop), else it is made here; it goes back in the answer's
`X-Request-Id` and sits in a context variable for as long as the request is served, so every line logged
meanwhile (and by the tasks the request starts) carries it without being handed it.

What a JSON line holds is what the plain line holds, nothing more: the message (securemsg's own messages
never carry health information or secrets, and aiohttp's are redacted by `gateway.logsafe`), and a
traceback without the exceptions' messages (`traceback_without_values`), since a message may quote data.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.logsafe import traceback_without_values

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("securemsg_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-Id"
# Sane: what proxies make (nginx's 32 hex digits, UUIDs, AWS trace ids), nothing that could break a log line.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:=+-]{0,127}")
# The access line's own fields (`extra=` of the middleware's log call), written as JSON fields of their own.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms")

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def request_id_from(header: str | None) -> str:
    """The caller's request id if it is sane, else a new one (32 hex digits)."""
    if header and _SANE.fullmatch(header):
        return header
    return secrets.token_hex(16)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id:
            line["request_id"] = request_id
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                line[name] = getattr(record, name)
        if record.exc_info and record.exc_info[1] is not None:
            line["traceback"] = traceback_without_values(record.exc_info[1])
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


_stamping: list[bool] = []


def stamp_request_ids() -> None:
    """Every log record made from now on carries the id of the request being served when it was made
    (`record.request_id`, None outside a request), whichever handler formats it and however much later.
    Idempotent; `create_app` and `setup_logging` call it."""
    if _stamping:
        return
    _stamping.append(True)
    make = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.request_id = REQUEST_ID.get()
        return record

    logging.setLogRecordFactory(factory)


def setup_logging(log_format: str = "plain", level: int = logging.INFO) -> None:
    """The process's one handler, on stderr, in the chosen format."""
    stamp_request_ids()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)  # a library's warning is a log line too, in the same format
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
