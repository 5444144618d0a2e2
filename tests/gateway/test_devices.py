"""POST/PATCH/DELETE /devices (docs/api.md §3, R19): four alert flags, one device per token, clear 422s."""

from __future__ import annotations

from inbox.models import Device

APNS = "ab" * 32
FCM = "dGhpcyBpcyBhbiBGQ00gdG9rZW4:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ"


async def test_r19_a_new_device_starts_with_all_four_alerts_on(api, cast):
    status, body = await api.post(
        "/devices", {"platform": "apns", "token": APNS, "app": "practice"}, token=cast.tok("clinician")
    )
    assert status == 201
    assert body["alerts"] == {
        "appointment": True,
        "new_message": True,
        "appointment_request": True,
        "video_appointment": True,
    }
    assert body["enabled"] is True and body["platform"] == "apns" and body["app"] == "practice"
    device = await Device.get(id=body["id"])
    assert device.participant_id == cast.id("clinician") and device.auth_token_id is not None


async def test_r19_one_token_registered_twice_is_one_device_and_keeps_its_choices(api, cast):
    me = cast.tok("clinician")
    _, first = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "practice"}, token=me)
    await api.patch(f"/devices/{first['id']}", {"alerts": {"appointment": False}}, token=me)
    status, again = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "practice"}, token=me)
    assert status == 201 and again["id"] == first["id"]
    assert again["alerts"]["appointment"] is False  # re-registering on app start keeps the opt-out
    assert await Device.filter(token=FCM).count() == 1
    # APNs tokens are hex: the same token in capitals is the same device.
    _, a = await api.post("/devices", {"platform": "apns", "token": APNS, "app": "practice"}, token=me)
    _, b = await api.post(
        "/devices", {"platform": "apns", "token": APNS.upper(), "app": "practice"}, token=me
    )
    assert a["id"] == b["id"]


async def test_r19_re_registering_moves_the_device_to_the_caller_and_enables_it(api, cast):
    _, mine = await api.post(
        "/devices", {"platform": "apns", "token": APNS, "app": "practice"}, token=cast.tok("clinician")
    )
    await api.patch(f"/devices/{mine['id']}", {"alerts": {"new_message": False}}, token=cast.tok("clinician"))
    await Device.filter(id=mine["id"]).update(enabled=False, disabled_reason="apns reported the token dead")
    # The phone changes hands: the biller signs in on it and the app registers the same token.
    status, theirs = await api.post(
        "/devices", {"platform": "apns", "token": APNS, "app": "practice"}, token=cast.tok("biller")
    )
    assert status == 201 and theirs["id"] == mine["id"]
    assert theirs["enabled"] is True and theirs["disabled_reason"] is None
    assert all(theirs["alerts"].values())  # the clinician's opt-outs are not the biller's
    device = await Device.get(id=mine["id"])
    assert device.participant_id == cast.id("biller")
    _, listed = await api.get("/devices", token=cast.tok("clinician"))
    assert listed["items"] == []
    # The clinician can no longer change or remove it.
    status, _ = await api.patch(
        f"/devices/{mine['id']}", {"alerts": {"new_message": True}}, token=cast.tok("clinician")
    )
    assert status == 404
    status, _ = await api.delete(f"/devices/{mine['id']}", token=cast.tok("clinician"))
    assert status == 404


async def test_r19_patch_sets_some_or_all_flags(api, cast):
    me = cast.tok("client")
    _, device = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "client"}, token=me)
    status, body = await api.patch(
        f"/devices/{device['id']}",
        {
            "alerts": {
                "appointment": False,
                "new_message": True,
                "appointment_request": False,
                "video_appointment": False,
            }
        },
        token=me,
    )
    assert status == 200
    assert body["alerts"] == {
        "appointment": False,
        "new_message": True,
        "appointment_request": False,
        "video_appointment": False,
    }
    status, body = await api.patch(
        f"/devices/{device['id']}", {"alerts": {"video_appointment": True}}, token=me
    )
    assert body["alerts"]["video_appointment"] is True and body["alerts"]["appointment"] is False


async def test_delete_unregisters(api, cast):
    me = cast.tok("clinician")
    _, device = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "practice"}, token=me)
    status, _ = await api.delete(f"/devices/{device['id']}", token=me)
    assert status == 200
    assert not await Device.filter(id=device["id"]).exists()
    status, body = await api.delete(f"/devices/{device['id']}", token=me)
    assert status == 404 and body["error"]["code"] == "not_found"
    for path in ("/devices/99999999999", "/devices/0"):
        status, body = await api.patch(path, {"alerts": {"new_message": False}}, token=me)
        assert status == 404 and body["error"]["code"] == "not_found"


BAD_REGISTRATIONS = [
    ({"platform": "gcm", "token": FCM, "app": "practice"}, "platform"),
    ({"platform": "apns", "token": APNS, "app": "watch"}, "app"),
    ({"platform": "apns", "token": "zz" * 32, "app": "practice"}, "token"),  # not hex
    ({"platform": "apns", "token": "ab" * 8, "app": "practice"}, "token"),  # too short
    ({"platform": "fcm", "token": "short", "app": "practice"}, "token"),
    ({"platform": "fcm", "token": "a" * 513, "app": "practice"}, "token"),
    ({"platform": "fcm", "token": FCM + " <script>", "app": "practice"}, "token"),
    ({"platform": "fcm", "app": "practice"}, "token"),
    ({"platform": "fcm", "token": 12345678901234567890, "app": "practice"}, "token"),
    ({"token": FCM, "app": "practice"}, "platform"),
    ({"platform": "fcm", "token": FCM, "app": "practice", "user_id": 1}, "user_id"),
]

BAD_ALERTS = [
    ({"appointments": False}, "alerts.appointments"),
    ({"new_message": "no"}, "alerts.new_message"),
    ({"new_message": 0}, "alerts.new_message"),
    ([True, False], "alerts"),
    (None, "alerts"),
]


async def test_bad_registrations_are_422_naming_the_field(api, cast):
    for body, field in BAD_REGISTRATIONS:
        status, answer = await api.post("/devices", body, token=cast.tok("clinician"))
        assert (status, answer["error"]["field"]) == (422, field), (body, answer)
    assert await Device.all().count() == 0


async def test_bad_alert_flags_are_422_naming_the_field(api, cast):
    me = cast.tok("clinician")
    _, device = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "practice"}, token=me)
    for alerts, field in BAD_ALERTS:
        status, answer = await api.patch(f"/devices/{device['id']}", {"alerts": alerts}, token=me)
        assert (status, answer["error"]["field"]) == (422, field), (alerts, answer)
    assert all((await Device.get(id=device["id"])).alerts.values())  # nothing changed


async def test_devices_need_a_persons_token(api, cast):
    status, body = await api.post(
        "/devices", {"platform": "fcm", "token": FCM, "app": "practice"}, token=cast.api_key
    )
    assert status == 403 and body["error"]["code"] == "participant_required"
    status, body = await api.post("/devices", {"platform": "fcm", "token": FCM, "app": "practice"})
    assert status == 401
