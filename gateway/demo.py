"""`securemsg demo`: a small practice to try everything with, seeded once and reused after."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gateway.app import make_context
from gateway.config import Config
from inbox import accounts, db, directory, messaging

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - printed for the local demo on purpose
OWNER_EMAIL = "owner@riverbend.example"


async def _seed(config: Config) -> dict[str, Any]:
    ctx = make_context(config)
    made = await accounts.create_practice(
        ctx,
        name="Riverbend Counseling",
        owner_name="Dana Whitfield",
        owner_email=OWNER_EMAIL,
        owner_password=DEMO_PASSWORD,
    )
    practice = made.practice
    await accounts.update_settings(
        ctx, practice, {"client_messaging_enabled": True, "auto_enable_new_clients": True}
    )
    clinician = await accounts.create_team_member(
        ctx,
        practice.id,
        name="Dr. Sam Rivera",
        email="sam@riverbend.example",
        roles=["clinician"],
        password=DEMO_PASSWORD,
    )
    biller = await accounts.create_team_member(
        ctx,
        practice.id,
        name="Priya Shah",
        email="billing@riverbend.example",
        roles=["biller"],
        password=DEMO_PASSWORD,
    )
    alex = await accounts.create_client(
        ctx, practice, name="Alex Morgan", email="alex@client.example", primary_clinician_id=clinician.id
    )
    jordan = await accounts.create_client(
        ctx, practice, name="Jordan Lee", email="jordan@client.example", primary_clinician_id=clinician.id
    )
    guardian = await accounts.add_contact(ctx, jordan, name="Casey Lee", email="casey@client.example")
    opened = await messaging.open_conversation(
        ctx,
        clinician,
        [alex.id],
        "Hi Alex, this is Dr. Rivera. You can reach me here between sessions :smile:",
    )
    await messaging.open_conversation(ctx, biller, [clinician.id], "Sam, Jordan's insurance card is updated.")
    return {
        "practice_id": practice.id,
        "api_key": made.api_key,
        "owner": {"id": made.owner.id, "email": OWNER_EMAIL},
        "clinician": {"id": clinician.id, "email": clinician.email},
        "biller": {"id": biller.id, "email": biller.email},
        "clients": [{"id": alex.id, "email": alex.email}, {"id": jordan.id, "email": jordan.email}],
        "contact": {"id": guardian.id, "email": guardian.email},
        "conversation_id": opened.conversation.id if opened.conversation else None,
    }


async def seed_demo(config: Config, var_dir: Path, host: str, port: int) -> str:
    state_file = var_dir / "demo.json"
    await db.connect(config.database_url)
    try:
        owners = await accounts.team_accounts(OWNER_EMAIL)
        if owners and state_file.exists():
            state = json.loads(state_file.read_text())
        else:
            if owners:  # the state file was lost: make a fresh API key for the existing practice
                practice = await directory.get_practice(owners[0].practice_id)
                state = {
                    "practice_id": practice.id,
                    "api_key": await accounts.new_api_key(make_context(config), practice.id),
                }
            else:
                state = await _seed(config)
            state_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(state_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(state, fh, indent=2)
    finally:
        await db.disconnect()
    base = f"http://{host}:{port}"
    return "\n".join(
        [
            "",
            "securemsg demo: Riverbend Counseling",
            f"  web inbox        {base}/inbox",
            f"  dev mail         {base}/dev/mail   (the client Alex's email is there: follow its link)",
            f"  client portal    {base}/portal/sign-in   (alex@client.example, jordan@client.example)",
            f"  sign in as       sam@riverbend.example / {DEMO_PASSWORD}   (clinician)",
            f"                   {OWNER_EMAIL} / {DEMO_PASSWORD}   (account owner)",
            f"                   billing@riverbend.example / {DEMO_PASSWORD}   (biller)",
            f"  practice API key {state['api_key']}   (also in {state_file})",
            "",
        ]
    )
