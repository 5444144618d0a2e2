"""The practice's time zone (issue 16): a setting of owners and managers, checked against the tz database;
chart notes, transcripts and exports write times in it (tests/gateway/test_api_records.py)."""

from __future__ import annotations

from inbox.models import AuditEvent, Participant, Practice


async def test_time_zone_starts_as_utc_not_chosen_and_owner_or_manager_sets_it(api, cast):
    status, body = await api.get("/practice/settings", token=cast.tok("owner"))
    assert status == 200
    assert body["time_zone"] == "UTC" and body["time_zone_chosen"] is False
    status, body = await api.patch(
        "/practice/settings", {"time_zone": "America/New_York"}, token=cast.tok("owner")
    )
    assert status == 200 and body["time_zone"] == "America/New_York" and body["time_zone_chosen"] is True
    status, body = await api.patch(
        "/practice/settings", {"time_zone": "Europe/Berlin"}, token=cast.tok("manager")
    )
    assert status == 200 and body["time_zone"] == "Europe/Berlin"
    # Choosing UTC is a choice too: it stays chosen.
    status, body = await api.patch("/practice/settings", {"time_zone": "UTC"}, token=cast.api_key)
    assert status == 200 and body == body | {"time_zone": "UTC", "time_zone_chosen": True}
    owner = await Participant.get(id=cast.id("owner"))
    assert (await Practice.get(id=owner.practice_id)).time_zone == "UTC"
    changes = [e.detail for e in await AuditEvent.filter(action="settings.update").order_by("id")]
    assert [c["time_zone"] for c in changes if "time_zone" in c] == [
        "America/New_York",
        "Europe/Berlin",
        "UTC",
    ]


async def test_time_zone_is_refused_to_others_and_unknown_zones_are_400(api, cast):
    for who in ("clinician", "biller", "client"):
        status, body = await api.patch("/practice/settings", {"time_zone": "Asia/Tokyo"}, token=cast.tok(who))
        assert status == 403, who
    for bad in (
        "Mars/Olympus_Mons",
        "localtime",
        "../../etc/passwd",
        "",
        " ",
        "America/New_York\n",
        "X" * 65,
    ):
        status, body = await api.patch("/practice/settings", {"time_zone": bad}, token=cast.tok("owner"))
        assert status == 400, bad
        assert body["error"]["code"] == "invalid_field" and body["error"]["field"] == "time_zone"
    for bad in (5, None, ["UTC"]):
        status, body = await api.patch("/practice/settings", {"time_zone": bad}, token=cast.tok("owner"))
        assert status == 422 and body["error"]["field"] == "time_zone", bad
    status, body = await api.get("/practice/settings", token=cast.tok("owner"))
    assert body["time_zone"] == "UTC" and body["time_zone_chosen"] is False
