"""`rotate-data-key`: a new key first in var/data.key, every stored secret re-encrypted in batches while the
gateway serves, and every body still reading through the API afterwards, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway import keyfile
from gateway.config import Config, new_data_key_line, parse_data_keys
from gateway.keys import CTX, DISPATCHER
from inbox import rotation
from inbox.crypto import DataKeyring
from inbox.models import ChartNote, Export, Message
from tests.conftest import make_config
from tests.gateway.records_helpers import download, open_zip, seed
from tests.inbox.cli_helper import run_cli


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    """As in production: the data keys come from var/data.key, which the running server re-reads."""
    var = tmp_path / "var"
    var.mkdir()
    path = var / "data.key"
    path.write_text(new_data_key_line("k1") + "\n")
    os.chmod(path, 0o600)
    return make_config(
        db_url, var, data_keys=parse_data_keys(str(path), path.read_text()), data_key_file=path
    )


async def key_ids_in_storage() -> set[str]:
    ids = {DataKeyring.key_id_of(bytes(b)) for b in await Message.all().values_list("body_cipher", flat=True)}
    ids |= {
        DataKeyring.key_id_of(bytes(b)) for b in await ChartNote.all().values_list("text_cipher", flat=True)
    }
    ids |= {
        DataKeyring.key_id_of(bytes(b))
        for b in await Export.all().values_list("password_cipher", flat=True)
        if b is not None
    }
    return ids


async def snapshot(api, cast, s, export_id):
    """Everything a person reads that was encrypted: bodies, removed text, chart notes, export password."""
    seen = {}
    for key, conv in s.conv.items():
        who = "biller" if key == "desk" else "clinician"
        status, body = await api.get(f"/conversations/{conv}/messages?limit=200", token=cast.tok(who))
        assert status == 200, body
        seen[f"conv{conv}"] = [(m["id"], m["body"]) for m in body["items"]]
    status, body = await api.get(f"/clients/{cast.id('client')}/transcripts", token=cast.tok("clinician"))
    assert status == 200
    seen["transcript"] = [(m["id"], m["body"]) for m in body["items"]]
    status, body = await api.get(f"/clients/{cast.id('client')}/chart-notes", token=cast.tok("clinician"))
    seen["notes"] = [n["text"] for n in body["items"]]
    status, body = await api.get(f"/exports/{export_id}", token=cast.tok("owner"))
    seen["password"] = body["password"]
    return seen


async def records(api, cast, clock, client):
    s = await seed(api, cast, clock)
    status, _ = await api.post(
        f"/clients/{cast.id('client')}/chart-notes",
        {"message_ids": [s.msg["hello"], s.msg["reply"]]},
        token=cast.tok("clinician"),
    )
    assert status == 201
    status, made = await api.post("/exports", {"scope": "all"}, token=cast.tok("owner"))
    assert status == 202
    await client.server.app[DISPATCHER].drain()
    return s, made["id"]


async def test_rotation_every_body_still_reads_in_the_api(api, cast, clock, client, config):
    s, export_id = await records(api, cast, clock, client)
    before = await snapshot(api, cast, s, export_id)
    assert s.text["wrong"] in [b for _, b in before["transcript"]]
    assert await key_ids_in_storage() == {"k1"}

    # What `securemsg rotate-data-key` does, from its own keyring, while this gateway keeps serving.
    assert config.data_key_file is not None
    new_id = keyfile.prepend_new_key(config.data_key_file)
    assert new_id == "k2"
    assert [k for k, _ in parse_data_keys("f", config.data_key_file.read_text())] == ["k2", "k1"]
    assert os.stat(config.data_key_file).st_mode & 0o077 == 0
    summary = await rotation.rotate(
        DataKeyring(parse_data_keys("f", config.data_key_file.read_text())), batch_size=2
    )
    assert summary.tallies["message bodies"].reencrypted == 7
    assert summary.tallies["chart notes"].reencrypted == 1
    assert summary.tallies["export passwords"].reencrypted == 1
    assert await key_ids_in_storage() == {"k2"}

    # The gateway started with k1 only; it reads every k2 body all the same, and writes under k2 from now.
    assert client.server.app[CTX].keyring.key_ids == ("k1",)
    after = await snapshot(api, cast, s, export_id)
    assert after == before
    assert client.server.app[CTX].keyring.current_key_id == "k2"
    status, body = await api.post(
        f"/conversations/{s.conv['hello']}/messages", {"body": "after rotation"}, token=cast.tok("clinician")
    )
    assert status == 201
    row = await Message.get(id=body["message"]["id"])
    assert DataKeyring.key_id_of(bytes(row.body_cipher)) == "k2"
    # The zip written before still opens with the password, which is unchanged.
    status, data, _ = await download(client, export_id, cast.tok("owner"))
    assert status == 200 and "README.txt" in open_zip(data, after["password"])


async def test_rotation_is_resumable_and_idempotent(api, cast, clock, client, config):
    s, export_id = await records(api, cast, clock, client)
    before = await snapshot(api, cast, s, export_id)
    assert config.data_key_file is not None
    keyfile.prepend_new_key(config.data_key_file)
    keyring = DataKeyring(parse_data_keys("f", config.data_key_file.read_text()))
    # Stopped after two batches: the store holds both keys, and everything reads.
    summary = rotation.Summary(keyring.current_key_id)
    done = await rotation.reencrypt_pass(keyring, summary, batch_size=2, max_batches=2)
    assert done == 4
    assert await key_ids_in_storage() == {"k1", "k2"}
    assert await rotation.rows_under_older_keys(keyring) == 5
    assert await snapshot(api, cast, s, export_id) == before
    # Run again: it carries on, and a third run finds nothing to do.
    summary = await rotation.rotate(keyring, batch_size=2)
    assert summary.reencrypted == 5
    assert await rotation.rows_under_older_keys(keyring) == 0
    assert (await rotation.rotate(keyring, batch_size=2)).reencrypted == 0
    assert await snapshot(api, cast, s, export_id) == before


async def test_rotate_data_key_command_with_the_key_file(api, cast, clock, client, config, db_url):
    s, export_id = await records(api, cast, clock, client)
    before = await snapshot(api, cast, s, export_id)
    code, out, err = await run_cli(
        db_url, config.var_dir, "rotate-data-key", "--batch-size", "3", "--settle-s", "0"
    )
    assert code == 0, err
    assert "new data key k2" in out
    assert "re-encrypted under k2: 7 message bodies, 1 chart notes, 1 export passwords" in out
    assert config.data_key_file is not None
    lines = config.data_key_file.read_text().split()
    assert [line.split(":")[0] for line in lines] == ["k2", "k1"]
    assert await key_ids_in_storage() == {"k2"}
    assert await snapshot(api, cast, s, export_id) == before


async def test_rotate_data_key_command_with_the_key_in_the_environment(
    api, cast, clock, client, config, db_url, tmp_path
):
    s, export_id = await records(api, cast, clock, client)
    before = await snapshot(api, cast, s, export_id)
    assert config.data_key_file is not None
    old_line = config.data_key_file.read_text().strip()
    env = {"SECUREMSG_DATA_KEY": old_line}
    code, out, err = await run_cli(db_url, tmp_path / "cli-var", "rotate-data-key", env=env)
    assert code == 2
    assert "SECUREMSG_DATA_KEY is set" in err and "--resume" in err
    (new_key,) = parse_data_keys("printed", out)
    assert new_key[0] == "k2" and len(new_key[1]) == 32
    assert await key_ids_in_storage() == {"k1"}  # nothing touched yet
    # The operator puts the line first and runs --resume.
    env = {"SECUREMSG_DATA_KEY": out.strip() + "\n" + old_line}
    code, out, err = await run_cli(db_url, tmp_path / "cli-var", "rotate-data-key", "--resume", env=env)
    assert code == 0, err
    assert "re-encrypted under k2: 7 message bodies" in out
    assert await key_ids_in_storage() == {"k2"}
    # This gateway reads from var/data.key, so it learns k2 by the file: here the operator adds it too.
    config.data_key_file.write_text(env["SECUREMSG_DATA_KEY"] + "\n")
    assert await snapshot(api, cast, s, export_id) == before


def test_next_key_id_counts_past_the_highest():
    assert keyfile.next_key_id([]) == "k1"
    assert keyfile.next_key_id(["k1"]) == "k2"
    assert keyfile.next_key_id(["k2", "k10", "prod"]) == "k11"
