"""The README is a short path with links into docs/; every link it and docs/index.md hold
resolves (pages other branches add are named here until they land)."""

import re

from tests.conftest import REPO

ADDED_ELSEWHERE = {"trust.md", "performance.md", "training.md", "evaluation.md"}
LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def _broken(page):
    targets = LINK.findall(page.read_text())
    return [
        t
        for t in targets
        if not (page.parent / t).is_file() and t.split("/")[-1] not in ADDED_ELSEWHERE
    ], targets


def test_readme_is_short_and_links_resolve():
    readme = REPO / "README.md"
    assert len(readme.read_text().splitlines()) < 150
    broken, targets = _broken(readme)
    assert broken == [] and "docs/index.md" in targets
    for page in sorted((REPO / "docs").glob("*.md")):
        assert _broken(page)[0] == [], page.name


TEST_REFERENCE = re.compile(r"`(?:tests/)?((?:\w+/)*test_\w+\.py)::(test_\w+)`")
TEST_FILE = re.compile(r"`(tests/(?:\w+/)*test_\w+\.py)`")


def test_every_test_the_pages_name_exists():
    """The "What happens when..." tables name the test behind each row: it must be there."""
    missing = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text()
        for path, name in TEST_REFERENCE.findall(text):
            source = REPO / "tests" / path
            if not source.is_file() or f"def {name}(" not in source.read_text():
                missing.append(f"{page.name}: {path}::{name}")
        missing += [
            f"{page.name}: {p}" for p in TEST_FILE.findall(text) if not (REPO / p).is_file()
        ]
    assert not missing, missing
