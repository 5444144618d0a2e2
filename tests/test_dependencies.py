"""What the code imports is what pyproject.toml declares, bounded above, and pinned in the lockfiles.

A third-party module imported but only present as another package's dependency works until that package
drops it; these tests read every import (ast, not a run) and compare it with the declarations.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("gateway", "inbox", "push", "mailer", "portal_links")
TESTING = ("tests", "bench")
LOCAL = {*RUNTIME, *TESTING}
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _requirements(extra: str | None = None) -> list[Requirement]:
    project = _project()
    lines = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(line) for line in lines]


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def _imports(packages: tuple[str, ...]) -> dict[str, set[str]]:
    """Top-level third-party module -> the files importing it."""
    found: dict[str, set[str]] = {}
    files = [path for package in packages for path in sorted((ROOT / package).rglob("*.py"))]
    assert len(files) > 20, "the import scan found no modules: it would pass vacuously"
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _undeclared(packages: tuple[str, ...], declared: set[str]) -> list[str]:
    distributions = importlib.metadata.packages_distributions()
    missing = []
    for module, files in sorted(_imports(packages).items()):
        provided_by = {canonicalize_name(d) for d in distributions.get(module, [])}
        if not provided_by & declared:
            missing.append(
                f"{module} (from {sorted(provided_by) or 'no installed package'}): {sorted(files)[0]}"
            )
    return missing


def test_every_import_of_the_packages_is_a_declared_runtime_dependency() -> None:
    assert _undeclared(RUNTIME, _names(_requirements())) == []


def test_every_import_of_the_tests_and_benchmarks_is_declared() -> None:
    declared = _names(_requirements()) | _names(_requirements("test"))
    assert _undeclared(TESTING, declared) == []


def test_every_dependency_has_an_upper_bound() -> None:
    unbounded = [
        str(r)
        for r in [*_requirements(), *_requirements("test")]
        if not any(spec.operator in ("<", "<=", "==", "~=") for spec in r.specifier)
    ]
    assert unbounded == []


def test_the_lockfiles_pin_every_declared_dependency_within_its_bounds() -> None:
    for lockfile, requirements in (
        ("requirements.lock", _requirements()),
        ("requirements-test.lock", [*_requirements(), *_requirements("test")]),
    ):
        text = (ROOT / lockfile).read_text()
        pins = {canonicalize_name(name): version for name, version in PIN.findall(text)}
        assert len(pins) >= len(requirements)
        for requirement in requirements:
            name = canonicalize_name(requirement.name)
            assert name in pins, f"{lockfile} lacks {name}: run `make lock`"
            assert requirement.specifier.contains(pins[name]), (
                f"{lockfile}: {name}=={pins[name]} not {requirement}"
            )
        # Every pin carries its hashes, so pip installs it only with --require-hashes satisfied.
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
        assert all("--hash=sha256:" in entry for entry in entries if PIN.match(entry))


def test_the_runtime_and_test_locks_agree() -> None:
    runtime = dict(PIN.findall((ROOT / "requirements.lock").read_text()))
    test = dict(PIN.findall((ROOT / "requirements-test.lock").read_text()))
    assert {name: test.get(name) for name in runtime} == runtime


def test_make_and_the_dockerfile_install_from_the_lockfiles_and_the_project_without_deps() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    # The stamps are rebuilt when a lockfile changes, and install exactly the locked, hash-checked files.
    assert re.search(r"^\$\(STAMP\): pyproject\.toml \$\(LOCK\)", makefile, re.M)
    assert re.search(r"^\$\(TEST_STAMP\): pyproject\.toml \$\(TEST_LOCK\)", makefile, re.M)
    assert makefile.count("--require-hashes -r $(LOCK)") == 1
    assert makefile.count("--require-hashes -r $(TEST_LOCK)") == 1
    # Every install but pip's own upgrade of itself in a new venv.
    installs = [
        line
        for line in re.findall(r"pip install [^\n]*", makefile + dockerfile)
        if "--upgrade pip" not in line
    ]
    assert len(installs) >= 5 and all(
        "--require-hashes" in line or "--no-deps" in line for line in installs
    ), installs
    # The image holds the built wheel, not an editable checkout.
    assert "--require-hashes -r /tmp/requirements.lock" in dockerfile
    assert not re.search(r"pip install[^\n]* -e\b", dockerfile)
