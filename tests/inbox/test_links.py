"""Links in emails (R16–R18, R4): stored only as a hash, bound to a person and a purpose, expiring, revocable,
and sign-in links used up exactly once. The database is the app's (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio

from gateway.keys import CTX
from inbox import accounts, links, messaging, outbox
from inbox.models import LinkToken, OutboxJob, Participant
from portal_links import hash_token


async def person(who, cast):
    return await Participant.get(id=cast.id(who))


def token_of(url):
    return url.rsplit("/", 1)[1]


async def test_r18_a_notification_link_is_stored_only_as_a_keyed_hash(client, cast):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    opened = await messaging.open_conversation(ctx, await person("clinician", cast), [alex.id])
    url = await links.issue_notify_link(ctx, alex, opened.conversation.id)
    assert url.startswith(f"{ctx.public_url}/portal/m/")
    row = await LinkToken.get(participant_id=cast.id("client"))
    assert row.token_hash == hash_token(token_of(url), ctx.secret) and token_of(url) not in row.token_hash
    assert row.purpose == "notify" and row.conversation_id == opened.conversation.id
    assert (row.expires_at - row.created_at).total_seconds() == ctx.link_ttl_s


async def test_r18_resolve_answers_none_for_every_kind_of_bad_link(client, cast, clock):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    good = token_of(await links.issue_notify_link(ctx, alex, None))
    assert (await links.resolve(ctx, good)).participant.id == alex.id
    assert await links.resolve(ctx, good, (links.SIGNIN,)) is None  # another purpose
    for bad in ("", "short", good[:-2], good + "x", "../../etc/passwd", "a" * 500, good.upper()):
        assert await links.resolve(ctx, bad) is None
    clock.advance(ctx.link_ttl_s)
    assert await links.resolve(ctx, good) is None  # expired


async def test_r18_a_sign_in_link_is_used_up_exactly_once_even_when_pressed_twice_at_once(client, cast):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    token = token_of(await links.issue_signin_link(ctx, alex))
    found = await links.resolve(ctx, token)
    assert found is not None and found.link.purpose == "signin"
    wins = await asyncio.gather(*(links.use_up(ctx, found.link) for _ in range(5)))
    assert sorted(wins) == [False, False, False, False, True]
    assert await links.resolve(ctx, token) is None


async def test_r18_issuing_a_sign_in_link_revokes_the_older_ones(client, cast):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    first = token_of(await links.issue_signin_link(ctx, alex))
    notify = token_of(await links.issue_notify_link(ctx, alex, None))
    second = token_of(await links.issue_signin_link(ctx, alex))
    assert await links.resolve(ctx, first) is None
    assert await links.resolve(ctx, second) is not None
    assert await links.resolve(ctx, notify) is not None  # notification links are not touched


async def test_r4_links_stop_working_when_the_person_may_not_use_the_portal(client, cast):
    ctx = client.server.app[CTX]
    alex, guardian = await person("client", cast), await person("contact", cast)
    mine = token_of(await links.issue_notify_link(ctx, alex, None))
    theirs = token_of(await links.issue_notify_link(ctx, guardian, None))
    # Switched off without going through update_client: the check itself still holds (R4, R10).
    await Participant.filter(id=alex.id).update(portal_access=False)
    assert await links.resolve(ctx, mine) is None
    assert await links.resolve(ctx, theirs) is None
    assert not await links.may_use_portal(await person("clinician", cast))


async def test_r4_update_client_and_revoke_links_end_every_live_link(client, cast):
    ctx = client.server.app[CTX]
    alex, guardian = await person("client", cast), await person("contact", cast)
    tokens = [token_of(await links.issue_notify_link(ctx, p, None)) for p in (alex, guardian)]
    await accounts.update_client(ctx, alex, {"messaging_enabled": False})
    await accounts.update_client(ctx, alex, {"messaging_enabled": True})
    assert [await links.resolve(ctx, t) for t in tokens] == [None, None]
    again = token_of(await links.issue_signin_link(ctx, alex))
    assert await links.revoke_links(ctx, [alex.id]) == 1
    assert await links.resolve(ctx, again) is None


async def test_r18_a_notification_session_ends_when_its_link_would(client, cast, clock):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    token = token_of(await links.issue_notify_link(ctx, alex, None))
    found = await links.resolve(ctx, token)
    assert ctx.session_ttl_s < ctx.link_ttl_s  # 12 h sessions; still the whole day for this one
    assert links.session_ttl_for(ctx, found.link) == ctx.link_ttl_s
    clock.advance(ctx.link_ttl_s - 100)
    found = await links.resolve(ctx, token)
    assert links.session_ttl_for(ctx, found.link) == 100
    signin = await links.resolve(ctx, token_of(await links.issue_signin_link(ctx, alex)))
    assert links.session_ttl_for(ctx, signin.link) == ctx.session_ttl_s


async def test_r18_a_sign_in_request_is_one_row_whether_or_not_the_address_is_known(client, cast):
    ctx = client.server.app[CTX]
    alex = await person("client", cast)
    await links.request_signin(ctx, "  " + alex.email.upper() + " ")
    await links.request_signin(ctx, "nobody@example.net")
    await links.request_signin(ctx, (await person("clinician", cast)).email)  # team: not a portal user
    rows = list(await OutboxJob.filter(kind=outbox.SIGNIN_EMAIL).order_by("id"))
    assert [r.recipient_id for r in rows] == [alex.id, None, None]
    assert all(r.payload == {} for r in rows)  # no address, no token stored
    assert await LinkToken.all().count() == 0  # the link is made when the email is sent
