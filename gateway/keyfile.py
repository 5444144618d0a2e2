"""The data key file (var/data.key): `id:base64key` lines, newest first. Only `rotate-data-key` writes it."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from gateway.config import new_data_key_line, parse_data_keys


def next_key_id(existing: Iterable[str]) -> str:
    """k1, k2, …: one more than the highest kN in use (other ids are left alone)."""
    numbers = [int(m.group(1)) for key_id in existing if (m := re.fullmatch(r"k(\d+)", key_id))]
    return f"k{max(numbers, default=0) + 1}"


def new_key_line(existing: Iterable[str]) -> tuple[str, str]:
    key_id = next_key_id(existing)
    return key_id, new_data_key_line(key_id)


def prepend_new_key(path: Path) -> str:
    """Put a new key first in the file, keeping every old line after it. The file is replaced in one
    rename (never half written) and stays readable by its owner only. Returns the new key id."""
    old = path.read_text()
    keys = parse_data_keys(str(path), old)
    key_id, line = new_key_line(k for k, _ in keys)
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(line + "\n" + old.strip() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return key_id
