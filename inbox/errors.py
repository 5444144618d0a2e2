"""Domain errors. The gateway's middleware turns each into docs/api.md's JSON error shape."""

from __future__ import annotations

from typing import Any

from inbox.permissions import Refusal


class DomainError(Exception):
    status = 400

    def __init__(self, code: str, message: str, *, rule: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.rule = rule
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.rule:
            body["rule"] = self.rule
        body.update(self.extra)
        return {"error": body}


class Unauthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403

    @classmethod
    def from_refusal(cls, refusal: Refusal) -> Forbidden:
        return cls(refusal.code, refusal.message, rule=refusal.rule)


class NotFound(DomainError):
    status = 404

    def __init__(self, what: str = "object") -> None:
        super().__init__("not_found", f"No such {what}.")


class Conflict(DomainError):
    status = 409


class Gone(DomainError):
    status = 410


class Invalid(DomainError):
    status = 422


class TooLarge(DomainError):
    status = 413


class SlowDown(DomainError):
    status = 429

    def __init__(self, retry_after: int, message: str = "Too many requests; try again shortly.") -> None:
        super().__init__("rate_limited", message)
        self.retry_after = max(1, int(retry_after))
