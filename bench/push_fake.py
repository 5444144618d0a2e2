"""Run one loopback push fake in its own process for bench/push.py, so it does not share our CPU.

    python -m bench.push_fake apns DIR   |   python -m bench.push_fake fcm DIR

Writes DIR/info.json ({"url", ...}) once listening, then serves until terminated.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from tests.fakes.apns import FakeApns, make_apns_key
from tests.fakes.certs import make_test_certs
from tests.fakes.fcm import FakeFcm


async def main(kind: str, directory: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if kind == "apns":
        certs = make_test_certs(directory)
        key = make_apns_key()
        fake = FakeApns(
            certs, key_pem=key.public_pem, key_id="BENCHKEY01", team_id="BENCHTEAM1", topic="org.bench.app"
        )
        fake.received = _Discard()  # keep memory flat over a long run
        await fake.start()
        info = {"url": fake.url, "ca": str(certs.ca_cert), "key_pem": key.private_pem}
    else:
        fcm = FakeFcm()
        fcm.received = _Discard()
        await fcm.start()
        info = {"url": fcm.url, "credentials": str(fcm.write_service_account(directory))}
    (directory / "info.json").write_text(json.dumps(info))
    await stop.wait()
    await (fake.stop() if kind == "apns" else fcm.stop())


class _Discard(list):  # type: ignore[type-arg]
    def append(self, item: object) -> None:
        pass


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
