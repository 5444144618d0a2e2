"""POST /events (docs/api.md §3 Integration, §5): appointment pushes of the event's type, to opted-in devices."""

from __future__ import annotations

from gateway.keys import CONFIG
from inbox import pushes
from tests.conftest import build_cast
from tests.gateway.pushkit import apns_token, config, drain, everything_received, fcm_token, jobs, register  # noqa: F401

STARTS = "2026-01-05T10:00:00Z"  # an hour after the test clock's start


async def post_event(api, cast, **fields):
    body = {
        "type": "appointment_alert",
        "participant_id": cast.id("clinician"),
        "appointment_id": "A-17",
        "starts_at": STARTS,
    } | fields
    return await api.post("/events", body, token=cast.api_key)


async def test_r19_an_appointment_event_sends_a_push_of_its_type_with_a_deep_link(
    client, api, cast, fake_apns, fake_fcm
):
    await register(api, cast.tok("clinician"), "apns", apns_token(30))
    await register(api, cast.tok("clinician"), "fcm", fcm_token(30))
    status, body = await post_event(api, cast)
    assert status == 202 and body["status"] == "accepted"
    await drain(client)

    [apns] = fake_apns.received
    assert apns.headers["apns-collapse-id"] == "appointment-A-17"
    assert apns.body == {
        "aps": {"alert": {"title": "Appointment reminder"}, "badge": 0, "sound": "default"},
        "type": "appointment_alert",
        "appointment_id": "A-17",
        "link": "securemsg://appointments/A-17",
    }
    [fcm] = fake_fcm.received
    assert fcm.message["data"] == {
        "type": "appointment_alert",
        "appointment_id": "A-17",
        "link": "securemsg://appointments/A-17",
        "badge": "0",
    }
    assert fcm.message["notification"] == {"title": "Appointment reminder"}
    sent = everything_received(fake_apns, fake_fcm)
    assert b"Clinician" not in sent and b"Riverbend" not in sent


async def test_r19_each_event_type_answers_to_its_own_alert_flag(client, api, cast, fake_apns, fake_fcm):
    phone = await register(api, cast.tok("clinician"), "apns", apns_token(31))
    tablet = await register(api, cast.tok("clinician"), "fcm", fcm_token(31))
    # The phone wants no appointment alerts (flag `appointment`); the tablet no video appointment alerts.
    await api.patch(f"/devices/{phone}", {"alerts": {"appointment": False}}, token=cast.tok("clinician"))
    await api.patch(
        f"/devices/{tablet}", {"alerts": {"video_appointment": False}}, token=cast.tok("clinician")
    )

    for n, kind in enumerate(("appointment_alert", "appointment_request", "video_appointment")):
        status, _ = await post_event(api, cast, type=kind, appointment_id=100 + n)
        assert status == 202
    await drain(client)
    assert [(r.body["type"], r.body["appointment_id"]) for r in fake_apns.received] == [
        ("appointment_request", "101"),
        ("video_appointment", "102"),
    ]
    assert [(r.message["data"]["type"], r.message["data"]["appointment_id"]) for r in fake_fcm.received] == [
        ("appointment_alert", "100"),
        ("appointment_request", "101"),
    ]
    titles = {r.body["type"]: r.body["aps"]["alert"]["title"] for r in fake_apns.received}
    assert titles == {
        "appointment_request": "New appointment request",
        "video_appointment": "Video appointment",
    }


async def test_an_alert_for_an_appointment_long_started_is_not_sent(client, api, cast, clock, fake_apns):
    await register(api, cast.tok("clinician"), "apns", apns_token(32))
    status, _ = await post_event(api, cast, type="video_appointment", starts_at="2026-01-05T08:00:00+00:00")
    assert status == 202
    status, _ = await post_event(api, cast, type="appointment_request", starts_at="2026-01-05T08:00:00+00:00")
    assert status == 202
    await drain(client)
    # The video call started an hour ago; a request for that time is still news.
    assert [r.body["type"] for r in fake_apns.received] == ["appointment_request"]
    moot = [j for j in await jobs(pushes.PUSH_APPOINTMENT) if j.status == "skipped"]
    assert [j.last_error for j in moot] == ["the appointment has already started"]


BAD_EVENTS = [
    ({"type": "appointment_cancelled"}, "type"),
    ({"type": None}, "type"),
    ({"participant_id": "12"}, "participant_id"),
    ({"participant_id": None}, "participant_id"),
    ({"appointment_id": "A 17"}, "appointment_id"),
    ({"appointment_id": "../../etc"}, "appointment_id"),
    ({"appointment_id": "x" * 49}, "appointment_id"),
    ({"appointment_id": ".."}, "appointment_id"),
    ({"appointment_id": -3}, "appointment_id"),
    ({"appointment_id": True}, "appointment_id"),
    ({"appointment_id": None}, "appointment_id"),
    ({"starts_at": "tomorrow at ten"}, "starts_at"),
    ({"starts_at": "2026-01-05T10:00:00"}, "starts_at"),  # no time zone
    ({"starts_at": 1767607200}, "starts_at"),
    ({"starts_at": "9999-12-31T23:59:59-12:00"}, "starts_at"),  # past year 9999 in UTC
    ({"starts_at": "0001-01-01T00:00:00+01:00"}, "starts_at"),
    ({"starts_at": "1850-01-01T00:00:00Z"}, "starts_at"),
    ({"note": "Jane's panic attacks"}, "note"),
]


async def test_bad_events_are_422_naming_the_field(client, api, cast):
    for change, field in BAD_EVENTS:
        status, body = await post_event(api, cast, **change)
        assert (status, body["error"].get("field")) == (422, field), (change, body)
    for missing in ("type", "participant_id", "appointment_id", "starts_at"):
        body = {"type": "appointment_alert", "participant_id": cast.id("clinician"), "appointment_id": "1"}
        body["starts_at"] = STARTS
        del body[missing]
        status, answer = await api.post("/events", body, token=cast.api_key)
        assert (status, answer["error"]["field"]) == (422, missing)
    status, body = await api.post("/events", [1, 2], token=cast.api_key)
    assert status == 422
    assert await jobs(pushes.PUSH_APPOINTMENT) == []


async def test_events_for_another_practices_participant_are_404_and_need_the_api_key(
    client, api, cast, clock
):
    other = await build_cast(api, client.server.app[CONFIG], clock, name="Elsewhere Therapy")
    status, body = await post_event(api, cast, participant_id=other.id("clinician"))
    assert status == 404 and body["error"]["code"] == "not_found"
    for unknown in (10**9, 2**40):  # the second is beyond PostgreSQL's integer ids: still a plain 404
        status, body = await post_event(api, cast, participant_id=unknown)
        assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.post(
        "/events",
        {
            "type": "appointment_alert",
            "participant_id": cast.id("clinician"),
            "appointment_id": 1,
            "starts_at": STARTS,
        },
        token=cast.tok("clinician"),
    )
    assert status == 403 and body["error"]["code"] == "api_key_required"
    assert await jobs(pushes.PUSH_APPOINTMENT) == []
