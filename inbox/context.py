"""What the domain functions need from outside, passed in rather than read from globals."""

from __future__ import annotations

from dataclasses import dataclass, field

from inbox.clock import Clock, SystemClock
from inbox.crypto import DataKeyring
from inbox.sealer import Sealer
from inbox.store.groupcommit import GroupCommit


@dataclass
class InboxContext:
    keyring: DataKeyring
    secret: bytes
    clock: Clock = field(default_factory=SystemClock)
    default_unread_delay_s: int = 600
    session_ttl_s: int = 12 * 3600
    link_ttl_s: int = 86400
    signin_link_ttl_s: int = 900
    public_url: str = "http://127.0.0.1:8080"
    app_link_scheme: str = "securemsg"
    # Sends share transactions through this (inbox.store.groupcommit); one per process and event loop.
    writes: GroupCommit = field(default_factory=GroupCommit)
    # How long a dispatcher's claim on an outbox row holds before another worker may take the row (a
    # worker killed mid-batch leaves its claims behind).
    outbox_lease_s: int = 120
    # The audit log's MAC keys (id, 32 bytes), newest first; kept in the var directory, never in the
    # database (inbox.audit). Without one, audit rows cannot be written.
    audit_keys: tuple[tuple[str, bytes], ...] = ()
    # Seals audit rows written inside other transactions soon after they commit (inbox.sealer).
    sealer: Sealer = field(default_factory=Sealer)
    # Export files are deleted this many days after they were written (R23).
    export_retention_days: int = 7
