"""Run the SMTP fake (tests/fakes/smtp.py) in its own process for bench/dispatch.py, so it does not share the
dispatcher's CPU.

    python -m bench.smtp_fake DIR

Writes DIR/info.json ({"port"}) once listening; on SIGTERM writes DIR/count.json ({"received",
"message_ids"}: how many emails arrived, how many distinct Message-IDs) and exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from tests.fakes.smtp import FakeSmtp


class _Counting(list):  # type: ignore[type-arg]
    """Keeps the count and the Message-IDs, not the messages: memory stays flat over a long run."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.ids: set[str] = set()

    def append(self, item: Any) -> None:
        self.count += 1
        self.ids.add(str(item.message.get("Message-ID", "")))


async def main(directory: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    fake = FakeSmtp()
    counting = _Counting()
    fake.received = counting
    await fake.start()
    (directory / "info.json").write_text(json.dumps({"port": fake.port}))
    await stop.wait()
    await fake.stop()
    (directory / "count.json").write_text(
        json.dumps({"received": counting.count, "message_ids": len(counting.ids)})
    )


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
