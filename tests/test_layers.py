"""The layers hold (docs/architecture.md): gateway → domain (`inbox`) → store (`inbox.store`), read from the
source with `ast`, nothing imported or run.

- The gateway imports neither Tortoise nor `inbox.models` (but for type annotations, under
  `TYPE_CHECKING`) nor `inbox.store`: it calls the domain, which calls the store.
- A domain module runs no ORM query and no raw SQL: no model class's query API, no instance `.save()`, no
  connection's `execute_*`, no Tortoise import but its exceptions, no `inbox.store.sql`.
- The store imports no domain module: what it needs of the rules is passed in.
- No import cycle between modules; no module uses another module's `_private` names; a library's private
  names are used in `inbox/store/_compat.py` only.

The checks are themselves tested on made-up modules that break each rule, so a check that stops finding
anything fails too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "inbox", "push", "mailer", "portal_links")

# The domain's storage exceptions, for good: the models themselves, their migrations, and the set-up (connect,
# migrate, and `db.transaction()`, the unit of work the gateway opens around domain calls).
DOMAIN_MAY_USE_THE_ORM = {"inbox/models.py", "inbox/db.py"}

ORM_QUERY_METHODS = frozenset(
    {
        "filter",
        "exclude",
        "get",
        "get_or_none",
        "all",
        "first",
        "create",
        "bulk_create",
        "bulk_update",
        "get_or_create",
        "update_or_create",
        "select_for_update",
        "exists",
        "count",
        "annotate",
        "raw",
        "in_bulk",
    }
)
INSTANCE_METHODS = frozenset({"save", "fetch_related", "refresh_from_db", "update_from_dict"})
CONNECTION_METHODS = frozenset(
    {"execute_query", "execute_query_dict", "execute_script", "execute_insert", "execute_many"}
)
# Private names of libraries that only `inbox/store/_compat.py` may touch. `_meta` is Tortoise's documented
# model metadata, not a private name.
PUBLIC_UNDERSCORE = frozenset({"_meta", "_replace", "_asdict", "_fields", "_make"})


@dataclass(frozen=True)
class Module:
    path: str  # relative, e.g. "inbox/messaging.py"
    name: str  # dotted, e.g. "inbox.messaging"
    tree: ast.Module


@cache
def modules() -> tuple[Module, ...]:
    found = []
    for package in PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            rel = file.relative_to(ROOT).as_posix()
            name = rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")
            found.append(Module(rel, name, ast.parse(file.read_text(), rel)))
    return tuple(found)


def is_first_party(name: str) -> bool:
    return name.split(".", 1)[0] in PACKAGES


def type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes under `if TYPE_CHECKING:`."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                out |= {id(n) for n in ast.walk(child)}
    return out


def imports(module: Module, *, runtime_only: bool = True) -> Iterator[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) of every import, relative ones resolved."""
    skip = type_checking_nodes(module.tree) if runtime_only else set()
    package = module.name if module.path.endswith("__init__.py") else module.name.rpartition(".")[0]
    for node in ast.walk(module.tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield base, [a.name for a in node.names], node.lineno


def storage_use(module: Module) -> list[str]:
    """Where a module queries storage itself: ORM imports, model query calls, instance saves, raw SQL."""
    found = []
    models: set[str] = set()
    for target, names, line in imports(module):
        if target == "tortoise" or (target.startswith("tortoise.") and target != "tortoise.exceptions"):
            found.append(f"{module.path}:{line} imports {target}")
        if target in ("inbox.store.sql", "inbox.store._compat") or (
            target == "inbox.store" and {"sql", "_compat"} & set(names)
        ):
            found.append(f"{module.path}:{line} imports the store's SQL machinery")
        if target == "inbox.models":
            models |= {n for n in names if n[:1].isupper() and not n.isupper()}
    for node in ast.walk(module.tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, owner = node.func.attr, node.func.value
        if isinstance(owner, ast.Name) and owner.id in models and attr in ORM_QUERY_METHODS:
            found.append(f"{module.path}:{node.lineno} {owner.id}.{attr}()")
        elif attr in INSTANCE_METHODS or attr in CONNECTION_METHODS:
            found.append(f"{module.path}:{node.lineno} .{attr}()")
    return found


def gateway_modules() -> list[Module]:
    return [m for m in modules() if m.name.startswith("gateway")]


def domain_modules() -> list[Module]:
    return [
        m
        for m in modules()
        if m.name.startswith("inbox")
        and not m.name.startswith(("inbox.store", "inbox.migrations"))
        and m.path not in DOMAIN_MAY_USE_THE_ORM
    ]


def gateway_violations(module: Module) -> list[str]:
    found = []
    for target, _, line in imports(module):
        if target == "tortoise" or target.startswith("tortoise."):
            found.append(f"{module.path}:{line} imports {target}")
        if target == "inbox.models":
            found.append(f"{module.path}:{line} imports inbox.models (outside TYPE_CHECKING)")
        if target == "inbox.store" or target.startswith("inbox.store."):
            found.append(f"{module.path}:{line} imports {target}")
    # and no instance saves or raw SQL on what the domain hands back
    return found + [f for f in storage_use(module) if " imports " not in f]


def test_the_gateway_calls_the_domain_never_the_store_or_the_orm() -> None:
    bad = [v for m in gateway_modules() for v in gateway_violations(m)]
    assert not bad, "the gateway calls the domain (docs/architecture.md):\n" + "\n".join(bad)


def test_no_domain_module_queries_storage_itself() -> None:
    bad = [v for m in domain_modules() for v in storage_use(m)]
    assert not bad, "queries belong in inbox/store/ (docs/architecture.md):\n" + "\n".join(bad)


def made_up(path: str, source: str) -> Module:
    return Module(path, path[: -len(".py")].replace("/", "."), ast.parse(source, path))


def test_the_checks_find_what_they_forbid() -> None:
    domain = made_up(
        "inbox/made_up.py",
        "from tortoise.expressions import Q\n"
        "from tortoise.exceptions import IntegrityError\n"
        "from inbox.models import Message\n"
        "from inbox.store import sql\n"
        "async def f(m, conn):\n"
        "    await Message.filter(id=1)\n"
        "    await m.save()\n"
        "    await conn.execute_query('SELECT 1')\n",
    )
    assert storage_use(domain) == [
        "inbox/made_up.py:1 imports tortoise.expressions",
        "inbox/made_up.py:4 imports the store's SQL machinery",
        "inbox/made_up.py:6 Message.filter()",
        "inbox/made_up.py:7 .save()",
        "inbox/made_up.py:8 .execute_query()",
    ]  # its exceptions may be caught: IntegrityError is no query
    gateway = made_up(
        "gateway/made_up.py",
        "from typing import TYPE_CHECKING\n"
        "from inbox.models import Message\n"
        "from inbox.store import people\n"
        "import tortoise\n"
        "if TYPE_CHECKING:\n"
        "    from inbox.models import Participant\n",
    )
    assert gateway_violations(gateway) == [
        "gateway/made_up.py:2 imports inbox.models (outside TYPE_CHECKING)",
        "gateway/made_up.py:3 imports inbox.store",
        "gateway/made_up.py:4 imports tortoise",
    ]


def test_the_store_imports_no_domain_module() -> None:
    allowed = {"inbox.models", "inbox.errors", "inbox.ids", "inbox.db"}
    bad = [
        f"{m.path}:{line} imports {target}"
        for m in modules()
        if m.name.startswith("inbox.store")
        for target, names, line in imports(m, runtime_only=False)
        if target.startswith("inbox")
        and not target.startswith("inbox.store")
        and target not in allowed
        and not (target == "inbox" and not names)
    ]
    assert not bad, "the store is below the domain: pass what it needs in\n" + "\n".join(bad)


def module_graph() -> dict[str, set[str]]:
    """Which first-party module imports which (but for type annotations): an import inside a function counts,
    since putting it there to dodge a cycle leaves the cycle in place."""
    names = {m.name for m in modules()}
    graph: dict[str, set[str]] = {}
    for m in modules():
        skip = type_checking_nodes(m.tree)
        edges: set[str] = set()
        for node in ast.walk(m.tree):
            if id(node) in skip or not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            single = Module(m.path, m.name, ast.Module(body=[node], type_ignores=[]))
            for target, taken, _ in imports(single):
                if not is_first_party(target):
                    continue
                subs = [f"{target}.{n}" for n in taken if f"{target}.{n}" in names]
                edges |= set(subs) or ({target} if target in names else set())
        graph[m.name] = edges - {m.name}
    return graph


def test_no_import_cycle() -> None:
    graph = module_graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    # A package's __init__ importing its own modules is how a package is put together, not a cycle.
    real = [
        c for c in cycles if not any(a.startswith(b + ".") or b.startswith(a + ".") for a, b in pairwise(c))
    ]
    assert not real, "import cycles:\n" + "\n".join(" → ".join(c) for c in real)


def test_no_module_uses_another_modules_private_names() -> None:
    names = {m.name for m in modules()}
    bad = []
    for m in modules():
        aliases: dict[str, str] = {}
        for target, taken, line in imports(m, runtime_only=False):
            if not is_first_party(target):
                continue
            for n in taken:
                full = f"{target}.{n}"
                if n.startswith("_") and not n.startswith("__"):
                    same_package = full.rpartition(".")[0] == m.name.rpartition(".")[0] or full.startswith(
                        m.name.rpartition(".")[0] + "."
                    )
                    if not (full in names and same_package):
                        bad.append(f"{m.path}:{line} imports {full}")
                if full in names:
                    aliases[n] = full
        for node in ast.walk(m.tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not aliases[node.value.id].startswith(m.name.rpartition(".")[0] + ".")
            ):
                bad.append(f"{m.path}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_library_private_names_are_touched_in_one_place() -> None:
    """`x._name` on anything but `self`/`cls` or a first-party module: only in inbox/store/_compat.py."""
    bad = []
    for m in modules():
        if m.path == "inbox/store/_compat.py":
            continue
        first_party = set()
        for node in ast.walk(m.tree):
            if isinstance(node, ast.Import):
                first_party |= {
                    a.asname or a.name.split(".")[0] for a in node.names if is_first_party(a.name)
                }
            elif isinstance(node, ast.ImportFrom) and (node.level or is_first_party(node.module or "")):
                first_party |= {a.asname or a.name for a in node.names}
        for node in ast.walk(m.tree):
            if not (isinstance(node, ast.Attribute) and node.attr.startswith("_")):
                continue
            if node.attr.startswith("__") or node.attr in PUBLIC_UNDERSCORE:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and (owner.id in ("self", "cls") or owner.id in first_party):
                continue
            bad.append(f"{m.path}:{node.lineno} {ast.unparse(node)}")
    assert not bad, "wrap a library's private name in inbox/store/_compat.py, with its check:\n" + "\n".join(
        bad
    )
