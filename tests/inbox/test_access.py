"""R27's re-check, `accounts.ended_credentials`: of the tokens behind open websockets, which no longer give
access and why — in batches, on SQLite and PostgreSQL. The same `takes_part` decides the portal (R4)."""

from __future__ import annotations

from gateway.keys import CTX
from inbox import accounts, links
from inbox.accounts import EXPIRED, MESSAGING_OFF, SIGNED_OUT
from inbox.models import AuthToken, Participant


async def token_of(ctx, who_id: int, ttl_s: int | None = None) -> int:
    person = await Participant.get(id=who_id)
    _, row = await accounts.issue_token(ctx, person, "app", ttl_s)
    return row.id


async def test_r27_each_way_access_ends_is_named(client, cast, clock):
    ctx = client.server.app[CTX]
    ids = {who: await token_of(ctx, cast.id(who)) for who in ("clinician", "clinician2", "client", "contact")}
    short = await token_of(ctx, cast.id("biller"), ttl_s=60)
    every = [*ids.values(), short]
    assert await accounts.ended_credentials(ctx, every) == {}

    await AuthToken.filter(id=ids["clinician"]).update(revoked_at=clock.now())
    await Participant.filter(id=cast.id("clinician2")).update(messaging_enabled=False)
    # Straight in the database (update_client would revoke their tokens as well): the client no longer
    # takes part, nor its contact, which takes part under the client's flags (R10).
    await Participant.filter(id=cast.id("client")).update(portal_access=False)
    clock.advance(61)
    assert await accounts.ended_credentials(ctx, [*every, 987654]) == {
        ids["clinician"]: SIGNED_OUT,
        ids["clinician2"]: MESSAGING_OFF,
        ids["client"]: MESSAGING_OFF,
        ids["contact"]: MESSAGING_OFF,
        short: EXPIRED,
        987654: SIGNED_OUT,  # no such token (gone with its participant)
    }
    assert await accounts.ended_credentials(ctx, []) == {}


async def test_r27_the_practice_api_key_never_holds_a_socket(client, cast):
    ctx = client.server.app[CTX]
    principal = await accounts.resolve_token(ctx, cast.api_key)
    assert principal is not None and principal.is_api_key
    assert await accounts.ended_credentials(ctx, [principal.token_id]) == {principal.token_id: SIGNED_OUT}


async def test_r27_many_tokens_are_checked_in_batches_and_only_the_ended_ones_named(client, cast, clock):
    ctx = client.server.app[CTX]
    person = await Participant.get(id=cast.id("scheduler"))
    rows = [
        AuthToken(
            token_hash=f"{i:064x}",
            kind="app",
            practice_id=person.practice_id,
            participant_id=person.id,
            created_at=clock.now(),
        )
        for i in range(1, 1201)
    ]
    await AuthToken.bulk_create(rows)
    made = sorted(await AuthToken.filter(participant_id=person.id).values_list("id", flat=True))
    assert len(made) >= 1200
    ended = set(made[::97])  # spread over the three batches of 512
    await AuthToken.filter(id__in=list(ended)).update(revoked_at=clock.now())
    assert await accounts.ended_credentials(ctx, made) == dict.fromkeys(ended, SIGNED_OUT)


async def test_r4_the_portal_and_the_socket_recheck_agree_on_who_takes_part(client, cast):
    contact = await Participant.get(id=cast.id("contact"))
    client_row = await Participant.get(id=cast.id("client"))
    member = await Participant.get(id=cast.id("clinician"))
    assert accounts.takes_part(contact, client_row) and await links.may_use_portal(contact)
    assert not accounts.takes_part(contact, None)  # a contact needs its client
    assert accounts.takes_part(member) and not await links.may_use_portal(member)  # team: never the portal
    client_row.messaging_enabled = False
    await client_row.save()
    assert not accounts.takes_part(contact, client_row) and not await links.may_use_portal(contact)
    member.messaging_enabled = False
    assert not accounts.takes_part(member)
