"""Fixtures for the fault tests: a real SMTP server on loopback, and the test's own view of the database
that the server processes use (to count what was stored, by the same models)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from inbox import db
from tests.fakes.smtp import FakeSmtp


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    fake = FakeSmtp()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def storage(db_url: str) -> AsyncIterator[str]:
    """The database under test, opened in this process too (read-only use: counting rows)."""
    await db.connect(db_url)
    yield db_url
    await db.disconnect()
