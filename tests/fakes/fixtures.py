"""pytest fixtures that run the loopback fakes; import them into a conftest.py to use them:

    from tests.fakes.fixtures import apns_key, fake_apns, fake_fcm, smtp, tls_certs  # noqa: F401

Each fake is started before the test and stopped after it (after any provider the test built, as long as
the test closes its provider itself or in a fixture that depends on the fake).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.fakes.apns import ApnsKey, FakeApns, make_apns_key
from tests.fakes.certs import CertPaths, make_test_certs
from tests.fakes.fcm import FakeFcm
from tests.fakes.smtp import FakeSmtp
from tests.fakes.webpush import FakeWebPush

APNS_KEY_ID = "ABC123DEFG"
APNS_TEAM_ID = "TEAM123456"
APNS_TOPIC = "org.securemsg.client"


@pytest.fixture
async def smtp() -> AsyncIterator[FakeSmtp]:
    """A real SMTP server on loopback that records what the app sends (tests/fakes/smtp.py)."""
    fake = FakeSmtp()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    return make_test_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def apns_key() -> ApnsKey:
    return make_apns_key()


@pytest.fixture
async def fake_apns(tls_certs: CertPaths, apns_key: ApnsKey) -> AsyncIterator[FakeApns]:
    fake = FakeApns(
        tls_certs, key_pem=apns_key.public_pem, key_id=APNS_KEY_ID, team_id=APNS_TEAM_ID, topic=APNS_TOPIC
    )
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def fake_fcm() -> AsyncIterator[FakeFcm]:
    fake = FakeFcm()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
def fcm_credentials_file(fake_fcm: FakeFcm, tmp_path: Path) -> Path:
    return fake_fcm.write_service_account(tmp_path)


@pytest.fixture
async def fake_webpush(tls_certs: CertPaths) -> AsyncIterator[FakeWebPush]:
    """A browser push service on loopback (tests/fakes/webpush.py) that decrypts what it is sent."""
    fake = FakeWebPush(tls_certs)
    await fake.start()
    yield fake
    await fake.stop()
