"""Shapes several groups share."""

from __future__ import annotations

from typing import Annotated, Literal

from gateway.typed import Answer, one_of
from inbox.kinds import ROLES

Kind = Literal["team", "client", "contact"]
Role = Annotated[str, one_of(ROLES)]


class Ok(Answer):
    ok: Literal[True]


class Named(Answer):
    id: int
    name: str
