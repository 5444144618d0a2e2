from __future__ import annotations

import re

import pytest

from portal_links import hash_token, link_for, new_token

SECRET = b"0123456789abcdef0123456789abcdef"


def test_new_token_is_url_safe_and_random() -> None:
    tokens = {new_token() for _ in range(200)}
    assert len(tokens) == 200
    for tok in tokens:
        assert re.fullmatch(r"[A-Za-z0-9_-]{43}", tok)  # 32 bytes, base64url without padding
    assert len(new_token(16)) == 22


def test_new_token_refuses_too_little_randomness() -> None:
    with pytest.raises(ValueError):
        new_token(8)


def test_hash_token_is_keyed_sha256_hex() -> None:
    tok = new_token()
    h = hash_token(tok, SECRET)
    assert re.fullmatch(r"[0-9a-f]{64}", h)
    assert hash_token(tok, SECRET) == h  # deterministic: usable as a lookup key
    assert hash_token(tok, SECRET[::-1]) != h  # depends on the secret
    assert hash_token(new_token(), SECRET) != h
    assert tok not in h


def test_hash_token_known_value() -> None:
    # HMAC-SHA256(key=SECRET, msg="abc"), computed independently with openssl:
    # printf abc | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
    assert hash_token("abc", SECRET) == "a60c859a6827c5ea576a48d8d368672fbfe4667c6a927428284a0cb3859cc1d6"


def test_hash_token_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError):
        hash_token("abc", b"short")


@pytest.mark.parametrize(
    ("base", "path"),
    [
        ("http://127.0.0.1:8080", "/portal/m/"),
        ("http://127.0.0.1:8080/", "/portal/m/"),
        ("http://127.0.0.1:8080", "portal/m"),
    ],
)
def test_link_for(base: str, path: str) -> None:
    assert link_for(base, path, "tok_-123") == "http://127.0.0.1:8080/portal/m/tok_-123"


def test_link_for_keeps_a_base_path_and_encodes_the_token() -> None:
    assert link_for("https://msg.example.org/sm/", "/portal/sign-in/", "a/b?c") == (
        "https://msg.example.org/sm/portal/sign-in/a%2Fb%3Fc"
    )
    with pytest.raises(ValueError):
        link_for("http://x", "/p/", "")
