"""Every token, hash, CSRF value, secret and signature is compared in constant time.

Secrets are checked either by looking up their keyed hash (`portal_links.hash_token`: the database finds
the row, no byte-by-byte comparison of a secret happens in Python) or with `hmac.compare_digest`. This
test reads the source of every package and refuses an `==` / `!=` between two values whose names say
they are secrets, so that a new comparison cannot slip in unnoticed; and it checks that the comparisons
that must exist do use `hmac.compare_digest`.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "inbox", "push", "mailer", "portal_links")
SECRET_NAME = re.compile(r"token|hash|csrf|secret|signature|digest|passw|otp|mac\b|_mac|api_key|cookie", re.I)
# Names that contain one of those words but hold no secret: ids, counts, flags, kinds, times.
NOT_SECRET = re.compile(r"(_id|_ids|_at|_count|_kind|_type|_enabled|_prefix|_s)$|^kind$", re.I)


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        if node.args and isinstance(node.args[0], ast.Constant):
            return str(node.args[0].value)
    if isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute)):
        return _name(node.func)
    return None


def _secret_valued(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):  # compared with a literal (None, "", a label): no secret at stake
        return False
    name = _name(node)
    return bool(name and SECRET_NAME.search(name) and not NOT_SECRET.search(name))


def plain_comparisons_of_secrets() -> list[str]:
    found = []
    for package in PACKAGES:
        paths = sorted((ROOT / package).rglob("*.py"))
        assert paths, f"no modules under {package}/: the scan would pass vacuously"
        for path in paths:
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Compare):
                    continue
                operands = [node.left, *node.comparators]
                for op, left, right in zip(node.ops, operands[:-1], operands[1:], strict=True):
                    if not isinstance(op, (ast.Eq, ast.NotEq)):
                        continue
                    if isinstance(left, ast.Constant) or isinstance(right, ast.Constant):
                        continue
                    if _secret_valued(left) or _secret_valued(right):
                        where = f"{path.relative_to(ROOT)}:{node.lineno}"
                        found.append(f"{where}: {ast.unparse(node)}")
    return found


def test_no_secret_is_compared_with_eq() -> None:
    assert plain_comparisons_of_secrets() == []


def test_the_checker_sees_a_plain_comparison(tmp_path: Path) -> None:
    """The checker is not blind: the comparisons it exists to catch are caught."""
    bad = ["sent == principal.csrf_token", "row.token_hash != hash_token(t, s)", "mac == expected_mac"]
    for source in bad:
        tree = ast.parse(source)
        [compare] = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
        assert _secret_valued(compare.left) or _secret_valued(compare.comparators[0]), source
    fine = ["token is None", "kind == 'api_key'", "row.auth_token_id != exclude", "token == ''"]
    for source in fine:
        tree = ast.parse(source)
        [compare] = [n for n in ast.walk(tree) if isinstance(n, ast.Compare)]
        left, right = compare.left, compare.comparators[0]
        assert (
            isinstance(compare.ops[0], ast.Is)
            or isinstance(right, ast.Constant)
            or not (_secret_valued(left) or _secret_valued(right))
        ), source


def test_the_comparisons_that_exist_use_compare_digest() -> None:
    """The places that do compare secrets in Python (CSRF tokens, device tokens, the audit chain) call
    hmac.compare_digest. (Link tokens are never compared in Python: they are found by their keyed hash.)"""
    expected = {
        "gateway/auth.py": "compare_digest",
        "gateway/portal_session.py": "compare_digest",
        "inbox/accounts.py": "compare_digest",
        "inbox/audit.py": "compare_digest",
    }
    for path, call in expected.items():
        assert call in (ROOT / path).read_text(), path
