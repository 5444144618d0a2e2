"""A backup's encryption: a key made from the operator's passphrase, and AES-256-GCM over a stream in chunks.

The key is scrypt(passphrase, a random salt) at n=2^17, r=8, p=1 (128 MiB and about half a second per guess).
A stream is compressed (zlib), then cut into 1 MiB chunks, each sealed on its own with AES-GCM: the nonce is
a random 7-byte prefix (written first), the chunk's number and a flag for the last chunk, so chunks cannot be
reordered, dropped or cut off at the end without the tag failing. The associated data names the member and
the manifest's hash, so the manifest cannot be edited and members cannot be swapped either.

Anything wrong — the passphrase, a flipped bit, a truncated file — comes out as `Damaged`.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Iterator
from typing import IO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

SCRYPT = {"n": 2**17, "r": 8, "p": 1}
CHUNK = 1 << 20
_TAG = 16
_PREFIX = 7


class Damaged(Exception):
    """The passphrase is wrong, or the backup was altered or cut short."""


def derive_key(passphrase: str, salt: bytes, *, n: int, r: int, p: int) -> bytes:
    if not (2 <= n <= 2**22 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16 and len(salt) >= 16):
        raise Damaged("the manifest's key derivation settings are not ones securemsg writes")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def _compressed(src: IO[bytes]) -> Iterator[bytes]:
    """The compressed stream of `src`, in pieces of exactly CHUNK bytes but the last (never none)."""
    packer = zlib.compressobj(6)
    pending = b""
    while block := src.read(CHUNK):
        pending += packer.compress(block)
        while len(pending) >= CHUNK:
            yield pending[:CHUNK]
            pending = pending[CHUNK:]
    pending += packer.flush()
    while len(pending) > CHUNK:
        yield pending[:CHUNK]
        pending = pending[CHUNK:]
    yield pending


def seal_stream(key: bytes, aad: bytes, src: IO[bytes], dst: IO[bytes]) -> None:
    aead = AESGCM(key)
    prefix = os.urandom(_PREFIX)
    dst.write(prefix)
    pieces = _compressed(src)
    current = next(pieces)
    index = 0
    for following in pieces:
        dst.write(aead.encrypt(_nonce(prefix, index, False), current, aad))
        current, index = following, index + 1
    dst.write(aead.encrypt(_nonce(prefix, index, True), current, aad))


def open_stream(key: bytes, aad: bytes, src: IO[bytes], size: int, dst: IO[bytes]) -> None:
    """Decrypt and decompress `size` bytes of `src` into `dst`; raises Damaged at the first bad byte."""
    if size < _PREFIX + _TAG:
        raise Damaged("too short")
    aead = AESGCM(key)
    prefix = src.read(_PREFIX)
    left = size - _PREFIX
    unpacker = zlib.decompressobj()
    index = 0
    while True:
        sealed = src.read(min(CHUNK + _TAG, left))
        left -= len(sealed)
        last = left == 0
        if len(sealed) < _TAG or (not last and len(sealed) != CHUNK + _TAG):
            raise Damaged("cut short")
        try:
            plain = aead.decrypt(_nonce(prefix, index, last), sealed, aad)
            dst.write(unpacker.decompress(plain))
        except (InvalidTag, zlib.error) as exc:
            raise Damaged(str(exc) or type(exc).__name__) from None
        if last:
            break
        index += 1
    try:
        dst.write(unpacker.flush())
    except zlib.error as exc:
        raise Damaged(str(exc)) from None
    if not unpacker.eof:
        raise Damaged("the compressed stream does not end")


def seal_bytes(key: bytes, aad: bytes, data: bytes) -> bytes:
    out = io.BytesIO()
    seal_stream(key, aad, io.BytesIO(data), out)
    return out.getvalue()


def open_bytes(key: bytes, aad: bytes, sealed: bytes) -> bytes:
    out = io.BytesIO()
    open_stream(key, aad, io.BytesIO(sealed), len(sealed), out)
    return out.getvalue()
