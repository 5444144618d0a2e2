"""Bad input to the records API is a clear 4xx, never a 5xx, on SQLite and PostgreSQL."""

from __future__ import annotations


async def test_bad_input_to_records_is_4xx(api, cast):
    owner, client = cast.tok("owner"), cast.id("client")
    calls = [
        ("GET", "/clients/abc/transcripts", None),
        ("GET", f"/clients/{client}/transcripts?participants=99999999999999999999", None),
        ("GET", f"/clients/{client}/transcripts?participants=" + ",".join(["1"] * 51), None),
        ("GET", f"/clients/{client}/transcripts?cursor=99999999999999999999", None),
        ("GET", f"/clients/{client}/transcripts?limit=-1", None),
        ("POST", f"/clients/{client}/chart-notes", {"message_ids": [10**30]}),
        ("POST", f"/clients/{client}/chart-notes", {"message_ids": [-1, 0]}),
        ("POST", f"/clients/{client}/chart-notes", {"message_ids": list(range(1, 300))}),
        ("POST", f"/clients/{client}/chart-notes", ["not", "an", "object"]),
        ("GET", f"/clients/{client}/chart-notes?cursor=-5", None),
        ("POST", "/exports", {"scope": "clinician", "clinician_id": 10**30}),
        ("POST", "/exports", {"scope": None}),
        ("GET", "/exports/99999999999999999999", None),
        ("GET", "/exports/123456/download", None),
        ("GET", "/audit?since=2026-13-45", None),
        ("GET", "/audit?cursor=99999999999999999999", None),
    ]
    for method, path, body in calls:
        status, answer = await api.call(method, path, body, token=owner)
        assert 400 <= status < 500, (method, path, status, answer)
        assert set(answer["error"]) >= {"code", "message"}, answer
