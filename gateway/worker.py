"""`securemsg worker`: only the dispatcher, for scale-out (N gateways + M workers on one database)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from gateway.app import create_app
from gateway.config import Config

log = logging.getLogger(__name__)


async def run_worker(config: Config) -> None:
    app = create_app(config, worker=True)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs every cleanup context: database, hub, parts, and starts the dispatcher
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        log.info("worker stopped")
