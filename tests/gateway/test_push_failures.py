"""What the push handler does with each answer (docs/api.md §5): dead tokens, 429, 5xx, permanent."""

from __future__ import annotations

from inbox import pushes
from inbox.models import Device, OutboxJob
from tests.fakes.apns import ApnsReply
from tests.fakes.fcm import FcmReply
from tests.gateway.pushkit import apns_token, config, drain, fcm_token, jobs, register  # noqa: F401


async def write_to_clinician(api, cast, body="hello"):
    status, conv = await api.post(
        "/conversations", {"participant_ids": [cast.id("clinician")], "body": body}, token=cast.tok("client")
    )
    assert status in (200, 201), conv
    return conv["id"]


async def devices_of(api, cast, who="clinician"):
    status, body = await api.get("/devices", token=cast.tok(who))
    assert status == 200
    return {d["id"]: d for d in body["items"]}


async def test_r19_apns_410_disables_the_device_at_once_and_it_is_never_tried_again(
    client, api, cast, fake_apns, fake_fcm
):
    dead = await register(api, cast.tok("clinician"), "apns", apns_token(10))
    alive = await register(api, cast.tok("clinician"), "apns", apns_token(11))
    fake_apns.reply_to(apns_token(10), ApnsReply.unregistered())

    await write_to_clinician(api, cast)
    await drain(client)
    assert sorted(r.token for r in fake_apns.received) == [apns_token(10), apns_token(11)]
    mine = await devices_of(api, cast)
    assert mine[dead]["enabled"] is False and "apns" in mine[dead]["disabled_reason"]
    assert mine[alive]["enabled"] is True
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "done"  # a dead token is not a reason to retry

    await write_to_clinician(api, cast, "and again")
    await drain(client)
    assert [r.token for r in fake_apns.received[2:]] == [apns_token(11)]

    # The app registers its (new) token again later: the device is back.
    status, body = await api.post(
        "/devices",
        {"platform": "apns", "token": apns_token(10), "app": "practice"},
        token=cast.tok("clinician"),
    )
    assert (
        status == 201 and body["id"] == dead and body["enabled"] is True and body["disabled_reason"] is None
    )


async def test_r19_fcm_unregistered_and_apns_bad_device_token_disable_their_devices(
    client, api, cast, fake_apns, fake_fcm
):
    gone = await register(api, cast.tok("clinician"), "fcm", fcm_token(10))
    bad = await register(api, cast.tok("clinician"), "apns", apns_token(12))
    fake_fcm.reply_to(fcm_token(10), FcmReply.unregistered())
    fake_apns.reply_to(apns_token(12), ApnsReply.bad_device_token())
    await write_to_clinician(api, cast)
    await drain(client)
    mine = await devices_of(api, cast)
    assert mine[gone]["enabled"] is False and mine[bad]["enabled"] is False
    await write_to_clinician(api, cast, "again")
    await drain(client)
    assert (len(fake_fcm.received), len(fake_apns.received)) == (1, 1)


async def test_r19_429_honours_retry_after_and_retries_only_the_device_that_needs_it(
    client, api, cast, clock, fake_apns, fake_fcm
):
    apns_device = await register(api, cast.tok("clinician"), "apns", apns_token(13))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(13))
    fake_apns.reply_to(apns_token(13), ApnsReply.too_many_requests(retry_after=30))

    await write_to_clinician(api, cast)
    await drain(client)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "pending" and row.attempts == 1
    assert (row.due_at - clock.now()).total_seconds() == 30  # not the 1 s backoff: Retry-After wins
    assert row.payload["pending"] == [apns_device]
    assert (len(fake_apns.received), len(fake_fcm.received)) == (1, 1)

    clock.advance(29)
    await drain(client)
    assert len(fake_apns.received) == 1  # not due yet

    fake_apns.reply_to(apns_token(13), ApnsReply.ok())
    clock.advance(1)
    await drain(client)
    assert len(fake_apns.received) == 2 and fake_apns.received[-1].token == apns_token(13)
    assert len(fake_fcm.received) == 1  # the FCM device had it already: never twice
    row = await OutboxJob.get(id=row.id)
    assert row.status == "done"


async def test_r19_503_is_retried_through_the_outbox_and_pushed_once_it_recovers(
    client, api, cast, clock, fake_apns, fake_fcm
):
    await register(api, cast.tok("clinician"), "apns", apns_token(14))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(14))
    fake_apns.reply_all(ApnsReply.service_unavailable())
    fake_fcm.reply_all(FcmReply.internal_error())

    conv_id = await write_to_clinician(api, cast)
    await drain(client)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "pending" and "2 to retry" in row.last_error
    assert (row.due_at - clock.now()).total_seconds() == 1
    clock.advance(1)
    await drain(client)
    row = await OutboxJob.get(id=row.id)
    assert row.attempts == 2 and (row.due_at - clock.now()).total_seconds() == 2  # backing off

    # Meanwhile a second message arrives: the badge of the retried push counts it.
    await api.post(f"/conversations/{conv_id}/messages", {"body": "still there?"}, token=cast.tok("client"))
    fake_apns.reply_all(ApnsReply.ok())
    fake_fcm.reply_all(FcmReply.ok())
    clock.advance(2)
    await drain(client)
    statuses = [r.status for r in await jobs(pushes.PUSH_NEW_MESSAGE)]
    assert statuses == ["done", "done"]
    delivered_apns = fake_apns.received[2:]
    delivered_fcm = fake_fcm.received[2:]
    assert len(delivered_apns) == 2 and len(delivered_fcm) == 2  # one per message, once each
    assert {r.body["aps"]["badge"] for r in delivered_apns} == {2}

    await drain(client)
    clock.advance(3600)
    await drain(client)
    assert (len(fake_apns.received), len(fake_fcm.received)) == (4, 4)  # never twice


async def test_r19_a_permanent_failure_is_not_retried(client, api, cast, fake_apns, fake_fcm):
    await register(api, cast.tok("clinician"), "fcm", fcm_token(15))
    fake_fcm.reply_to(fcm_token(15), FcmReply.sender_id_mismatch())
    await write_to_clinician(api, cast)
    await drain(client)
    [row] = await jobs(pushes.PUSH_NEW_MESSAGE)
    assert row.status == "failed" and "SENDER_ID_MISMATCH" in row.last_error
    device = await Device.get(token=fcm_token(15))
    assert device.enabled  # not the token's fault: the device stays
