"""Tortoise's engine for PostgreSQL here (`inbox.db.tortoise_config`): Tortoise's own asyncpg client, but a
transaction that fails to begin gives its pooled connection back.

Tortoise's context takes a connection from the pool, then sends BEGIN; when BEGIN failed (the database went
away, the statement timeout) or the task was cancelled meanwhile (a request whose client went away, a server
stopping), `__aenter__` raised with the connection still taken and no `__aexit__` to give it back. Each such
failure lost one of the pool's connections for good: after `maxsize` of them every transaction of the process
waited for ever (`tests/inbox/test_transaction_begin.py`).

The names used here are checked in `inbox.store._compat.EXPECTED`. This module's name must keep "asyncpg" in
it: Tortoise's migration executor picks PostgreSQL's schema editor by the name of the client class's module.
"""

from __future__ import annotations

import asyncio
import contextlib

from tortoise.backends.asyncpg.client import AsyncpgDBClient, TransactionWrapper
from tortoise.backends.base.client import TransactionalDBClient, TransactionContext, TransactionContextPooled
from tortoise.connection import get_connections

from inbox.store._compat import hold_connection, transaction_pool


class _Context(TransactionContextPooled):
    async def __aenter__(self) -> TransactionalDBClient:
        await self.ensure_connection()
        pool = transaction_pool(self.client)
        connection = await pool.acquire()
        hold_connection(self.client, connection)
        connections = get_connections()
        token = connections.set(self.connection_name, self.client)
        try:
            await self.client.begin()
        except BaseException:
            connections.reset(token)
            with contextlib.suppress(Exception):
                # Shielded: a cancelled caller still gives the connection back (asyncpg resets or closes it).
                await asyncio.shield(pool.release(connection))
            raise
        self.token = token
        return self.client


class SafeAsyncpgDBClient(AsyncpgDBClient):
    def _in_transaction(self) -> TransactionContext:
        return _Context(TransactionWrapper(self), self._pool_init_lock)


client_class = SafeAsyncpgDBClient
