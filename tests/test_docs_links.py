"""The repository stands alone: every relative link in the README and docs/ resolves inside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(docs) > 3, "the docs glob found nothing: the check would pass vacuously"
    return docs


def test_every_relative_link_in_readme_and_docs_resolves_inside_the_repository() -> None:
    broken: list[str] = []
    checked = 0
    for doc in _documents():
        for target in LINK.findall(doc.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue  # an absolute URL or an anchor on the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            checked += 1
            if not path.is_relative_to(ROOT) or not path.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert checked > 10
    assert broken == []


def test_the_contract_and_the_rules_are_the_projects_own_documents() -> None:
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    rules = (ROOT / "docs" / "rules.md").read_text(encoding="utf-8")
    assert "POST /conversations/{id}/messages" in api
    assert all(f"**R{n}**" in rules for n in range(1, 31))


# A link that leaves the machine: an inline or reference-style Markdown link, or an autolink, to a URL.
ABSOLUTE = re.compile(
    r"\]\(\s*<?([a-z][a-z0-9+.-]*:[^)\s>]*)|^\s*\[[^\]]+\]:\s*<?([a-z][a-z0-9+.-]*:\S+)|<([a-z][a-z0-9+.-]*://[^>\s]+)>",
    re.M,
)
LOCAL = re.compile(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?(/|$)")


def test_no_link_in_readme_or_docs_leads_outside_the_repository() -> None:
    """URLs may be quoted as text or in code (a setting's default, a curl line), but every link a reader can
    follow stays in the repository, or on the reader's own machine (the demo on localhost)."""
    found = [
        (doc.relative_to(ROOT), url)
        for doc in _documents()
        for match in ABSOLUTE.finditer(doc.read_text(encoding="utf-8"))
        for url in match.groups()
        if url
    ]
    assert ("docs/scale-out.md", "http://localhost:8080") in [(str(d), u) for d, u in found]  # it finds them
    assert [(str(d), u) for d, u in found if not LOCAL.match(u)] == []
