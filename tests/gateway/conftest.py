"""Fixtures for the gateway tests that send mail: a real SMTP server on loopback (tests/fakes/smtp.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.smtp import FakeSmtp


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    fake = FakeSmtp()
    await fake.start()
    yield fake
    await fake.stop()
