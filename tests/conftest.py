"""Shared fixtures: a fresh, migrated database per test on SQLite and on PostgreSQL, the app, a client.

PostgreSQL and Redis tests run when `SECUREMSG_TEST_POSTGRES_URL` / `SECUREMSG_TEST_REDIS_URL` are set, or
when a server answers on the default local address. With `SECUREMSG_TEST_REQUIRE_SERVICES=1` (CI) a
missing server fails those tests instead of skipping them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import Config, new_data_key_line, parse_data_keys
from inbox.clock import FakeClock
from tests.fakes.fixtures import (  # noqa: F401
    apns_key,
    fake_apns,
    fake_fcm,
    fake_webpush,
    fcm_credentials_file,
    smtp,
    tls_certs,
)
from tests.openapi_check import check_answer


def _cheap_password_hashes() -> None:
    """Argon2's default costs are for production; the suite hashes thousands of passwords on a shared machine."""
    import argon2

    from inbox.accounts import use_password_parameters

    use_password_parameters(argon2.profiles.CHEAPEST)


_cheap_password_hashes()

DEFAULT_PG = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def _required() -> bool:
    return os.environ.get("SECUREMSG_TEST_REQUIRE_SERVICES", "") in ("1", "true", "yes")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def postgres_url() -> str | None:
    url = os.environ.get("SECUREMSG_TEST_POSTGRES_URL")
    if url:
        return url
    if _port_open("127.0.0.1", 5432):
        return DEFAULT_PG
    return None


def redis_url() -> str | None:
    url = os.environ.get("SECUREMSG_TEST_REDIS_URL")
    if url:
        return url
    if _port_open("127.0.0.1", 6379):
        return DEFAULT_REDIS
    return None


def need(what: str, value: str | None) -> str:
    if value:
        return value
    if _required():
        pytest.fail(f"{what} is required here (SECUREMSG_TEST_REQUIRE_SERVICES=1) but is not reachable")
    pytest.skip(f"{what} not available: set SECUREMSG_TEST_{what.upper()}_URL to run this test")


# --- databases -----------------------------------------------------------------------------------------


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def _pg_exec(url: str, *statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


# A PostgreSQL test database is emptied and reused rather than dropped: DROP DATABASE forces a checkpoint,
# which on a busy machine cost each test seconds. One that a test changed the shape of (its tables or the
# migrations recorded) is dropped instead. The free list is per process (per pytest-xdist worker).
_PG_FREE: list[str] = []
_PG_USED: list[str] = []
_SHAPE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


async def _pg_shape(url: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        done = await conn.fetch("SELECT app || '.' || name FROM tortoise_migrations ORDER BY 1")
        # What a test may add beside rows: functions and triggers (tests/gateway/test_auditing.py breaks
        # the audit table with one), sequences, views.
        extra = await conn.fetch(
            "SELECT 'f ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public'"
            " UNION ALL SELECT 't ' || tgname FROM pg_trigger WHERE NOT tgisinternal"
            " UNION ALL SELECT 'c ' || c.relkind::text || c.relname FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN ('S', 'v', 'm')"
            " ORDER BY 1"
        )
    finally:
        await conn.close()
    return tuple(r[0] for r in tables), tuple(r[0] for r in done) + tuple(r[0] for r in extra)


async def _pg_recycle(base: str, shape: tuple[tuple[str, ...], tuple[str, ...]]) -> None:
    while _PG_USED:
        name = _PG_USED.pop()
        if await _pg_empty_again(base, name, shape):
            _PG_FREE.append(name)
        else:
            await _pg_exec(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _pg_empty_again(base: str, name: str, shape: tuple[tuple[str, ...], tuple[str, ...]]) -> bool:
    import asyncpg

    await _pg_exec(
        base,
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",  # noqa: S608
    )
    try:
        if await _pg_shape(_with_db(base, name)) != shape:
            return False
        tables = ", ".join(f'"{t}"' for t in shape[0] if t != "tortoise_migrations")
        await _pg_exec(
            _with_db(base, name), "SET lock_timeout = '5s'", f"TRUNCATE {tables} RESTART IDENTITY CASCADE"
        )
    except (OSError, asyncpg.PostgresError):
        return False
    return True


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inbox.db import migrate

    path = tmp_path_factory.mktemp("tmpl") / "template.sqlite3"
    asyncio.run(migrate(f"sqlite://{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str | None]:
    url = postgres_url()
    if url is None:
        yield None
        return
    from inbox.db import migrate

    name = f"securemsg_tmpl_{os.getpid()}"
    try:
        asyncio.run(_pg_exec(url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"'))
    except OSError:
        yield None
        return
    asyncio.run(migrate(_with_db(url, name)))
    _SHAPE[name] = asyncio.run(_pg_shape(_with_db(url, name)))
    yield name
    drops = [f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)' for db in _PG_FREE + _PG_USED]
    _PG_FREE.clear()
    _PG_USED.clear()
    asyncio.run(_pg_exec(url, *drops, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """A fresh database with the current schema, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "securemsg.sqlite3"
        shutil.copyfile(sqlite_template, path)
        yield f"sqlite://{path}"
        return
    template = request.getfixturevalue("postgres_template")
    base = need("postgres", postgres_url() if template else None)
    asyncio.run(_pg_recycle(base, _SHAPE[template]))
    if _PG_FREE:
        name = _PG_FREE.pop()
    else:
        name = f"securemsg_t_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_exec(base, f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _with_db(base, name)
    # Emptied when the next test needs a database: by then this test's app (whose fixture may be torn down
    # after this one) has closed its connections.
    _PG_USED.append(name)


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "securemsg.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite://{path}"


@pytest.fixture(autouse=True)
def _fresh_tortoise_caches() -> None:
    """Tortoise caches prepared SQL per table, not per dialect; tests switch between SQLite and PostgreSQL."""
    from tortoise.backends.base import executor

    executor.EXECUTOR_CACHE.clear()


# --- the app -------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_config(db: str, var_dir: Path, **overrides: Any) -> Config:
    base = Config(
        database_url=db,
        secret_key=b"test-secret-key-0123456789abcdef",
        data_keys=parse_data_keys("test", new_data_key_line("k1")),
        var_dir=var_dir,
        dev_mail_dir=var_dir / "mail",
        testing=True,
    )
    return base.with_overrides(**overrides) if overrides else base


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    return make_config(db_url, tmp_path / "var")


class Api:
    """A thin JSON client over aiohttp's test client: `await api.post(path, body, token=...)`. Every answer
    of the API is checked against the served OpenAPI document (tests/openapi_check.py): an undocumented
    status or a body that does not match fails the test."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        raw = kw.pop("raw", False)
        url = path if raw or path.startswith("/api/") or path in ("/healthz", "/readyz") else "/api/v1" + path
        resp = await self.client.request(method, url, json=body, headers=headers, **kw)
        try:
            data = await resp.json(content_type=None)
        except ValueError:
            data = await resp.text()
        wrong = check_answer(method, resp.url.path, resp.status, resp.content_type, data)
        if wrong is not None:
            pytest.fail(wrong, pytrace=False)
        return resp.status, data

    async def get(self, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("GET", path, None, token, **kw)

    async def post(self, path: str, body: Any = None, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("POST", path, body, token, **kw)

    async def patch(
        self, path: str, body: Any = None, token: str | None = None, **kw: Any
    ) -> tuple[int, Any]:
        return await self.call("PATCH", path, body, token, **kw)

    async def put(self, path: str, body: Any = None, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("PUT", path, body, token, **kw)

    async def delete(self, path: str, token: str | None = None, **kw: Any) -> tuple[int, Any]:
        return await self.call("DELETE", path, None, token, **kw)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, clock: FakeClock) -> Any:
    from gateway.app import create_app

    return await aiohttp_client(create_app(config, clock=clock))


@pytest.fixture
def api(client: Any) -> Api:
    return Api(client)


class Cast:
    """A practice with one person of every kind, made through the API as an integrator would."""

    api_key: str
    ids: dict[str, int]
    tokens: dict[str, str]

    def __init__(self) -> None:
        self.ids = {}
        self.tokens = {}

    def id(self, who: str) -> int:
        return self.ids[who]

    def tok(self, who: str) -> str:
        return self.tokens[who]


PASSWORD = "correct horse battery"


async def build_cast(
    api: Api, config: Config, clock: FakeClock, *, name: str = "Riverbend Counseling"
) -> Cast:
    from gateway.app import make_context
    from inbox import accounts

    made = await accounts.create_practice(
        make_context(config, clock),
        name=name,
        owner_name="Olive Owner",
        owner_email=f"owner-{uuid.uuid4().hex[:6]}@example.org",
        owner_password=PASSWORD,
    )
    cast = Cast()
    cast.api_key = made.api_key
    cast.ids["owner"] = made.owner.id
    key = made.api_key
    status, _ = await api.patch("/practice/settings", {"client_messaging_enabled": True}, token=key)
    assert status == 200
    team = {
        "clinician": ["clinician"],
        "clinician2": ["clinician"],
        "supervisor": ["supervisor"],
        "biller": ["biller"],
        "scheduler": ["scheduler"],
        "manager": ["practice_manager"],
    }
    suffix = uuid.uuid4().hex[:6]
    for who, roles in team.items():
        status, body = await api.post(
            "/team-members",
            # With a password: the scripted way in. Without one the member would be sent an invitation
            # email (R25), which the tests that count emails do not expect.
            {
                "name": who.title(),
                "email": f"{who}-{suffix}@example.org",
                "roles": roles,
                "password": PASSWORD,
            },
            token=key,
        )
        assert status == 201, body
        cast.ids[who] = body["id"]
    for who in ("client", "client2"):
        status, body = await api.post(
            "/clients",
            {
                "name": f"{who.title()} Person",
                "email": f"{who}-{suffix}@example.net",
                "primary_clinician_id": cast.ids["clinician"],
                "portal_access": True,
                "messaging_enabled": True,
            },
            token=key,
        )
        assert status == 201, body
        cast.ids[who] = body["id"]
    status, body = await api.post(
        f"/clients/{cast.ids['client']}/contacts",
        {"name": "Guardian", "email": f"guardian-{suffix}@example.net"},
        token=key,
    )
    assert status == 201, body
    cast.ids["contact"] = body["id"]
    ctx = make_context(config, clock)
    from inbox.models import Participant

    for who, pid in cast.ids.items():
        participant = await Participant.get(id=pid)
        token, _ = await accounts.issue_token(ctx, participant, "app")
        cast.tokens[who] = token
    return cast


@pytest.fixture
async def cast(api: Api, config: Config, clock: FakeClock) -> AsyncIterator[Cast]:
    yield await build_cast(api, config, clock)


# --- leaked SQLite connections ------------------------------------------------------------------------
# aiosqlite runs each connection on a non-daemon thread that waits for work until the connection is closed.
# A connection a test leaves open keeps that thread alive after its event loop has gone: the interpreter then
# cannot exit when the run ends (CI saw pytest print its summary and hang until it was killed). Every test
# must close what it opened; this fails the test that did not.


def _sqlite_threads() -> set[Any]:
    import threading

    return {
        t
        for t in threading.enumerate()
        if getattr(getattr(t, "_target", None), "__name__", "") == "_connection_worker_thread"
        and t.is_alive()
    }


TEST_HANG_S = float(
    os.environ.get("SECUREMSG_TEST_HANG_S", "600")
)  # far above the slowest test (the wheel's build, the scale-out runs: a minute or two)
HANG_EXIT_GRACE_S = 120.0


def _hang_report(path: Path) -> Path:
    return path.with_name(path.name.replace(".txt", "-tasks.txt"))


def _unhang(path: Path, nodeid: str) -> None:
    """In a timer thread, when a test has run TEST_HANG_S: every running event loop of this process writes its
    tasks' stacks (what each one awaits) to a file and cancels them, so the test fails with that record and
    the run goes on. (A loop that does not answer is left to faulthandler's exit, HANG_EXIT_GRACE_S later.)"""
    import gc

    report = _hang_report(path)
    with open(report, "a") as f:
        f.write(f"{nodeid}: still running after {TEST_HANG_S:.0f} s; the tasks of its event loops:\n")
    loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop) and o.is_running()]

    def dump_and_cancel(loop: asyncio.AbstractEventLoop) -> None:
        with open(report, "a") as f:
            for task in asyncio.all_tasks(loop):
                f.write(f"--- {task!r}\n" + "".join(f"  {line}\n" for line in _awaiting(task.get_coro())))
        for task in asyncio.all_tasks(loop):
            task.cancel(f"the test ran {TEST_HANG_S:.0f} s (tests/conftest.py _no_test_hangs)")

    for loop in loops:
        loop.call_soon_threadsafe(dump_and_cancel, loop)


def _awaiting(coro: Any) -> list[str]:
    """Where a task is, all the way down what it awaits: coroutines, async generators (pytest-asyncio's
    fixture tear-down awaits one through `__anext__`, which `Task.print_stack` does not follow) and what
    they wait for at the bottom."""
    import inspect

    lines: list[str] = []
    obj, last_frame = coro, None
    for _ in range(200):
        if obj is None:
            break
        frame = (
            getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
        )
        if frame is not None:
            lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
            last_frame = frame
        nxt = (
            getattr(obj, "cr_await", None)
            or getattr(obj, "ag_await", None)
            or getattr(obj, "gi_yieldfrom", None)
        )
        if nxt is None and frame is None and last_frame is not None:
            # `agen.__anext__()`'s awaitable names no generator: the running one is among the caller's locals
            nxt = next(
                (v for v in last_frame.f_locals.values() if inspect.isasyncgen(v) and v.ag_running), None
            )
            last_frame = None
        if nxt is None and frame is None:
            lines.append(f"waiting for {obj!r}")
        obj = nxt
    return lines


@pytest.fixture(autouse=True)
def _no_test_hangs(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test (its fixtures' set-up and tear-down included) that runs TEST_HANG_S fails: its event loop's
    tasks are written with their stacks to $TMPDIR/securemsg-test-hang-PID-tasks.txt and cancelled, so the run
    goes on with that test failed rather than waiting for CI's time limit (under pytest-xdist with
    `--dist loadgroup`, a worker that exits instead leaves the run waiting for good). Should the loop not
    answer, HANG_EXIT_GRACE_S later the process ends with every thread's traceback in
    $TMPDIR/securemsg-test-hang-PID.txt. Seen twice: a worker idle in its event loop in a fixture's tear-down
    (once in test_r25_the_reset_form_needs_its_csrf_token's)."""
    import faulthandler
    import tempfile
    import threading

    # pytest holds stderr (fd 2) for the test's output, which an exiting process would lose: the tracebacks
    # go to a file of their own, named by the process.
    path = Path(tempfile.gettempdir()) / f"securemsg-test-hang-{os.getpid()}.txt"
    timer = threading.Timer(TEST_HANG_S, _unhang, args=(path, request.node.nodeid))
    timer.daemon = True
    with open(path, "w") as dump:
        faulthandler.dump_traceback_later(TEST_HANG_S + HANG_EXIT_GRACE_S, exit=True, file=dump)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            faulthandler.cancel_dump_traceback_later()
    if path.stat().st_size == 0:  # nothing hung: leave no empty file behind
        path.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _no_sqlite_connection_left_open() -> Iterator[None]:
    """Set up first, torn down last: after the test's event loop and every other fixture are gone."""
    before = _sqlite_threads()
    yield
    left = _sqlite_threads() - before
    for thread in left:
        thread.join(timeout=2.0)
    if any(t.is_alive() for t in left):
        import gc

        gc.collect()  # an unreachable connection is stopped by its __del__
        for thread in left:
            thread.join(timeout=2.0)
    left = {t for t in left if t.is_alive()}
    if left:
        pytest.fail(f"{len(left)} SQLite connection(s) left open by this test", pytrace=False)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (tests/run.py), tests on the shared Redis server run one at a time on one worker:
    Redis pub/sub channels are the same whatever database number a test picks."""
    for item in items:
        if item.get_closest_marker("redis") is not None:
            item.add_marker(pytest.mark.xdist_group("shared-redis"))
