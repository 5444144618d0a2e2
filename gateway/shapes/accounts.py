"""Accounts (docs/api.md §3): one's own password, a reset link, and a link exchanged for a token."""

from __future__ import annotations

from typing import Literal

from gateway.shapes.messaging import Me
from gateway.shapes.people import Password
from gateway.typed import Answer, Body


class PasswordChange(Body):
    current_password: str
    new_password: Password  # else 422 weak_password


class ResetRequest(Body):
    email: str


class MagicBody(Body):
    token: str


class PasswordChanged(Answer):
    ok: Literal[True]
    ended_sessions: int


class ResetAsked(Answer):
    ok: Literal[True]
    message: str


class LinkSession(Answer):
    token: str
    participant: Me
    conversation_id: int | None
