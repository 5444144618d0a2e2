"""The kinds of participant and the team roles: the domain's words, which the gateway uses too (they are
declared with the models, which the gateway does not import)."""

from __future__ import annotations

from inbox.models import CLIENT, CONTACT, ROLES, TEAM

__all__ = ["CLIENT", "CONTACT", "ROLES", "TEAM"]
