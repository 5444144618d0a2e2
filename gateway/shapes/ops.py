"""Operations (docs/api.md §3): liveness and readiness."""

from __future__ import annotations

from typing import Literal

from gateway.typed import Answer, absent


class Alive(Answer):
    status: Literal["ok"]


class Checks(Answer):
    database: bool
    redis: bool = absent()  # with SECUREMSG_REDIS_URL set


class Ready(Answer):
    status: Literal["ok", "degraded", "unavailable"]
    checks: Checks
