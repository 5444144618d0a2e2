"""The shared pieces: Retry-After parsing, batch folding, the alert-flag map."""

from __future__ import annotations

import datetime as dt
import logging

import push
from push.base import Outcome, PushMessage, collect, parse_retry_after


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2025, 1, 1, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30
    assert parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0
    assert parse_retry_after("-5") == 0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("nan") is None


def test_a_batch_waits_as_long_as_its_longest_retry_after() -> None:
    batch = [PushMessage(f"t{n}", "new_message", {}) for n in range(5)]
    outcomes = [
        Outcome("delivered"),
        Outcome("retry", "429", 10),
        Outcome("retry", "429", 40),
        Outcome("dead", "410 Unregistered"),
        Outcome("failed", "413 PayloadTooLarge"),
    ]

    result = collect(batch, outcomes, logging.getLogger("test"), "test")

    assert result.delivered == ["t0"]
    assert result.retry_tokens == ["t1", "t2"]
    assert result.retry_after == 40
    assert result.dead_tokens == ["t3"]
    assert result.failed == {"t4": "413 PayloadTooLarge"}


def test_every_alert_push_type_maps_to_a_device_alert_flag() -> None:
    assert set(push.ALERT_FLAG_FOR.values()) == set(push.ALERT_TYPES)
    assert set(push.ALERT_FLAG_FOR) == set(push.PUSH_TYPES) - {"badge"}
    assert push.ALERT_FLAG_FOR["appointment_alert"] == "appointment"


def test_push_is_a_leaf_package() -> None:
    import ast
    from pathlib import Path

    paths = sorted(Path(push.__file__).parent.glob("*.py"))
    assert len(paths) >= 3, "the scan found no modules"
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] not in {"inbox", "gateway", "mailer"}, f"{path.name} imports {name}"
