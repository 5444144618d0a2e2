"""The dispatcher's mechanics on SQLite and PostgreSQL: claims, backoff, giving up, expired claims."""

from __future__ import annotations

import asyncio

import pytest

from gateway.dispatcher import Dispatcher, JobOutcome
from gateway.keys import CTX
from inbox import outbox
from inbox.models import OutboxJob


async def add_jobs(ctx, n, kind="test"):
    return [await outbox.enqueue(ctx, kind, payload={"n": i}) for i in range(n)]


async def test_two_workers_never_claim_the_same_row(client):
    ctx = client.server.app[CTX]
    await add_jobs(ctx, 60)
    a, b = Dispatcher(ctx), Dispatcher(ctx)
    first, second = await asyncio.gather(
        outbox.claim_due_jobs(ctx, a.worker_id, limit=40), outbox.claim_due_jobs(ctx, b.worker_id, limit=40)
    )
    ids_a, ids_b = {j.id for j in first}, {j.id for j in second}
    assert not ids_a & ids_b
    assert len(ids_a | ids_b) == 60


async def test_failures_back_off_and_give_up_after_a_day(client, clock):
    ctx = client.server.app[CTX]
    (job,) = await add_jobs(ctx, 1)
    calls = []

    async def flaky(batch):
        calls.append(clock.now())
        return {j.id: JobOutcome.retry("SMTP 421 try later") for j in batch}

    d = Dispatcher(ctx)
    d.register("test", flaky)
    assert await d.run_once() == 1
    row = await OutboxJob.get(id=job.id)
    assert row.status == "pending" and row.attempts == 1 and row.last_error == "SMTP 421 try later"
    assert (row.due_at - clock.now()).total_seconds() == 1
    assert await d.run_once() == 0  # not due yet
    clock.advance(1)
    await d.run_once()
    row = await OutboxJob.get(id=job.id)
    assert (row.due_at - clock.now()).total_seconds() == 2  # doubled
    for _ in range(40):
        clock.advance(3600)
        await d.run_once()
    row = await OutboxJob.get(id=job.id)
    assert row.status == "failed"
    assert row.last_error.startswith("gave up after")
    assert len(calls) <= 40


async def test_a_dead_workers_claim_expires_and_the_row_is_taken_again(client, clock):
    ctx = client.server.app[CTX]
    (job,) = await add_jobs(ctx, 1)
    dead = Dispatcher(ctx)
    assert [j.id for j in await outbox.claim_due_jobs(ctx, dead.worker_id)] == [job.id]
    done = []

    async def handle(batch):
        done.extend(j.id for j in batch)
        return {j.id: JobOutcome.done() for j in batch}

    alive = Dispatcher(ctx)
    alive.register("test", handle)
    assert await alive.run_once() == 0  # still claimed
    clock.advance(outbox.LEASE_S + 1)
    assert await alive.run_once() == 1
    assert done == [job.id]
    assert (await OutboxJob.get(id=job.id)).status == "done"
    # The dead worker coming back cannot overwrite the outcome.
    await outbox.finish(ctx, (await OutboxJob.get(id=job.id)), "failed", "late")
    assert (await OutboxJob.get(id=job.id)).status == "done"


async def test_a_handler_that_raises_leaves_rows_for_retry(client):
    ctx = client.server.app[CTX]
    await add_jobs(ctx, 3)

    async def broken(batch):
        raise RuntimeError("boom")

    d = Dispatcher(ctx)
    d.register("test", broken)
    assert await d.run_once() == 3
    rows = await OutboxJob.all()
    assert all(r.status == "pending" and r.attempts == 1 and "boom" in r.last_error for r in rows)


async def test_a_postponed_row_is_due_later_and_not_counted_as_a_failure(client, clock):
    ctx = client.server.app[CTX]
    (job,) = await add_jobs(ctx, 1)
    seen = []

    async def throttle_once(batch):
        seen.extend(j.id for j in batch)
        if len(seen) == 1:
            return {j.id: JobOutcome.postponed("throttled", 300) for j in batch}
        return {j.id: JobOutcome.done() for j in batch}

    d = Dispatcher(ctx)
    d.register("test", throttle_once)
    await d.run_once()
    row = await OutboxJob.get(id=job.id)
    assert row.status == "pending" and row.attempts == 0 and row.last_error == "throttled"
    assert (row.due_at - clock.now()).total_seconds() == 300 and row.claimed_by is None
    clock.advance(299)
    assert await d.run_once() == 0
    clock.advance(1)
    assert await d.run_once() == 1
    assert (await OutboxJob.get(id=job.id)).status == "done"


async def test_a_row_settled_by_its_handler_stays_settled_when_the_handler_then_fails(client):
    ctx = client.server.app[CTX]
    first, second = await add_jobs(ctx, 2)

    async def sends_one_then_breaks(batch):
        await outbox.finish(ctx, batch[0], "done", "sent")
        raise RuntimeError("database went away")

    d = Dispatcher(ctx)
    d.register("test", sends_one_then_breaks)
    await d.run_once()
    assert (await OutboxJob.get(id=first.id)).status == "done"
    again = await OutboxJob.get(id=second.id)
    assert again.status == "pending" and again.attempts == 1


async def test_the_claim_is_renewed_while_a_batch_outlasts_the_lease(client, clock):
    """A batch that takes longer than the lease keeps its rows: the idle worker claims none of them."""
    ctx = client.server.app[CTX]
    ctx.outbox_lease_s = 1
    await add_jobs(ctx, 3)
    taken_by_other: list[int] = []
    other = Dispatcher(ctx)
    other.register("test", lambda batch: _done(batch, taken_by_other))

    async def slow(batch):
        for _ in batch:
            clock.advance(1)  # each row takes a whole lease
            await asyncio.sleep(0.5)  # real time: the renewal (every third of the lease) runs meanwhile
            assert await other.run_once() == 0  # nothing has run out
        return {j.id: JobOutcome.done() for j in batch}

    first = Dispatcher(ctx)
    first.register("test", slow)
    assert await first.run_once() == 3
    assert taken_by_other == []
    assert {r.status for r in await OutboxJob.all()} == {"done"}


async def _done(batch, seen):
    seen.extend(j.id for j in batch)
    return {j.id: JobOutcome.done("sent by the other") for j in batch}


async def test_a_row_whose_claim_another_worker_took_is_not_sent_and_not_overwritten(client, clock):
    """Renewals failed for a whole lease (the database away), another worker took the rows: before its
    next send the first worker finds the claim token changed and leaves the rows to the other."""
    ctx = client.server.app[CTX]
    jobs = await add_jobs(ctx, 3)
    sent: list[int] = []
    taken_by_other: list[int] = []
    other = Dispatcher(ctx)
    other.register("test", lambda batch: _done(batch, taken_by_other))

    async def sends_one_then_loses_the_rest(batch):
        outcomes = {}
        for job in batch:
            if not await outbox.still_held([job]):
                outcomes[job.id] = JobOutcome.released("claim taken")
                continue
            sent.append(job.id)
            outcomes[job.id] = JobOutcome.done("sent")
            await outbox.finish(ctx, job, "done", "sent")  # settled as it goes, like an email
            if len(sent) == 1:
                clock.advance(outbox.LEASE_S + 1)  # no renewal ran: the claim ran out
                assert await other.run_once() == 2  # the other worker takes what is left
        return outcomes

    first = Dispatcher(ctx)
    first.register("test", sends_one_then_loses_the_rest)
    assert await first.run_once() == 3
    assert sent == [jobs[0].id] and taken_by_other == [jobs[1].id, jobs[2].id]
    rows = {r.id: r for r in await OutboxJob.all()}
    assert rows[jobs[0].id].last_error == "sent"
    # The other worker's outcome stands; the first one's "released" did not touch its rows.
    assert [rows[j.id].last_error for j in jobs[1:]] == ["sent by the other"] * 2
    assert {r.status for r in rows.values()} == {"done"}


async def test_an_outcome_is_recorded_once_the_database_answers_again(monkeypatch):
    """`until_recorded` waits out an unavailable database rather than dropping the record of a send."""
    monkeypatch.setattr(outbox, "RECORD_RETRY_START_S", 0.01)
    attempts = []

    async def write():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionRefusedError("database restarting")
        return "recorded"

    assert await outbox.until_recorded(write, "a test row") == "recorded"
    assert len(attempts) == 3

    async def broken():
        raise ValueError("a fault, not an outage")

    with pytest.raises(ValueError):
        await outbox.until_recorded(broken, "a test row")


async def test_stopping_right_after_a_wake_stops_the_dispatcher(client):
    """A request wakes the dispatcher as the server stops: the stop must end. (On Python 3.11,
    `asyncio.wait_for` returned instead of raising when the cancellation met the wake, so the dispatcher's
    loop went on and the stop waited for ever: a server that never finished stopping, and test runs that
    hung in a fixture's tear-down.)"""
    ctx = client.server.app[CTX]
    d = Dispatcher(ctx, idle_s=30)
    d.start()
    async with asyncio.timeout(10):  # until it waits for work (asyncio.Event keeps its waiters in _waiters)
        while not d._wake._waiters:  # noqa: ASYNC110 - the event is the dispatcher's own; only its waiters tell
            await asyncio.sleep(0.01)
    task = d._task
    d.wake()
    # Watched from outside: a timeout around `await d.stop()` would cancel the dispatcher's task again.
    stopping = asyncio.create_task(d.stop())
    done, _ = await asyncio.wait({stopping}, timeout=10)
    if not done:
        assert task is not None
        task.cancel()  # a second cancel ends it, so the test fails rather than hangs
        await stopping
        pytest.fail("the dispatcher did not stop: its loop swallowed the cancellation and went on")
