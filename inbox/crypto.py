"""Message bodies at rest: AES-256-GCM under the practice's data key.

Stored form: b"v1" + key id length (1 byte) + key id + 12-byte nonce + ciphertext-with-tag. The key id lets
`rotate-data-key` re-encrypt in batches while old rows still read. The associated data binds a body to its
conversation, so a ciphertext copied into another conversation does not decrypt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_MAGIC = b"v1"


class DecryptError(Exception):
    pass


class DataKeyring:
    """The data keys, newest first; the first one encrypts, any of them decrypts.

    With a `loader` (the gateway passes one that re-reads var/data.key when the file changes), a running
    server learns of a key that `securemsg rotate-data-key` added: at once when it meets a ciphertext under
    a key id it does not hold, and within `check_every_s` for the key it encrypts with. Keys once loaded
    are never forgotten by a running process.
    """

    def __init__(
        self,
        keys: Sequence[tuple[str, bytes]],
        *,
        loader: Callable[[], Sequence[tuple[str, bytes]] | None] | None = None,
        check_every_s: float = 2.0,
    ) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._current_id = keys[0][0]
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self._loader = loader
        self._check_every_s = check_every_s
        self._checked_at = time.monotonic()

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def refresh(self, *, force: bool = False) -> bool:
        """Ask the loader for the keys again; True when the keyring changed."""
        if self._loader is None:
            return False
        if not force and time.monotonic() - self._checked_at < self._check_every_s:
            return False
        self._checked_at = time.monotonic()
        keys = self._loader()
        if not keys:
            return False
        before = (self._current_id, set(self._keys))
        for key_id, key in keys:
            if key_id not in self._keys:
                self._keys[key_id] = AESGCM(key)
        self._current_id = keys[0][0]
        return before != (self._current_id, set(self._keys))

    @property
    def current_key_id(self) -> str:
        self.refresh()
        return self._current_id

    def encrypt(self, plaintext: str, context: str) -> bytes:
        self.refresh()
        kid = self._current_id.encode()
        nonce = os.urandom(12)
        ct = self._keys[self._current_id].encrypt(nonce, plaintext.encode("utf-8"), context.encode())
        return _MAGIC + bytes([len(kid)]) + kid + nonce + ct

    @staticmethod
    def key_id_of(blob: bytes) -> str:
        if blob[:2] != _MAGIC:
            raise DecryptError("unknown ciphertext format")
        n = blob[2]
        return blob[3 : 3 + n].decode()

    def decrypt(self, blob: bytes, context: str) -> str:
        key_id = self.key_id_of(blob)
        aead = self._keys.get(key_id)
        if aead is None and self.refresh(force=True):
            aead = self._keys.get(key_id)
        if aead is None:
            raise DecryptError(f"no data key {key_id!r} in the keyring")
        start = 3 + len(key_id.encode())
        nonce, ct = blob[start : start + 12], blob[start + 12 :]
        try:
            return aead.decrypt(nonce, ct, context.encode()).decode("utf-8")
        except Exception as exc:  # InvalidTag: tampered, or the wrong conversation
            raise DecryptError("message body does not decrypt") from exc
