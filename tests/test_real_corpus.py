"""Real clean documents come back unchanged through the real server (issue 15, item 2).

The documents are the vendored sample of the real corpus in tests/fixtures/real/ (man pages in
many languages, C++ headers, Markdown with inline HTML, translation catalogues, licences,
release notes and real HTML pages, all from Debian packages; see SOURCES.md there). Each is
sent as its bytes with the manifest's content_type and the default policy; the service must
return exactly the text it was sent and flag `repeated_block` in at most 1% of them. The
whole corpus runs in bench/real_corpus.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from textmend.v1 import textmend_pb2
from textmend_client import TextMendClient

SAMPLE = Path(__file__).parent / "fixtures" / "real"

# Issue 15: "at most 1 flagged document in 100" on the real clean corpus.
REPEATED_BLOCK_SHARE = 0.01

# The sample's promised spread (issue 15 brief for the vendored sample: 60-150 files over
# many languages and formats), checked so that a re-vendoring cannot quietly shrink it.
MIN_FILES = 60
MIN_LANGUAGES = 15

# How many edits per changed file the failure message shows.
SHOW_EDITS = 5


@dataclass(frozen=True)
class Outcome:
    """One sample file as the server returned it."""

    entry: dict[str, Any]
    sent: str
    response: textmend_pb2.RepairResponse


def intended_text(data: bytes) -> str:
    """The text a file's bytes stand for: a leading BOM is a signature, not content. (The
    sample's W3C charset test pages declare iso-8859-15 in their markup but are stored as
    UTF-8: valid UTF-8 wins over a legacy declaration, which is reported as overruled.)"""
    return data.decode("utf-8").removeprefix("\ufeff")


def _manifest() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads(
        (SAMPLE / "manifest.json").read_text(encoding="utf-8")
    )
    return entries


@pytest.fixture(scope="module")
def outcomes(target: str) -> Iterator[list[Outcome]]:
    """Every sample file through the server, once for the module's tests."""
    results: list[Outcome] = []
    with TextMendClient(target, timeout=120) as client:
        for entry in _manifest():
            data = (SAMPLE / "files" / entry["path"]).read_bytes()
            response = client.repair(data, id=entry["path"], content_type=entry["content_type"])
            sent = intended_text(data)
            results.append(Outcome(entry, sent, response))
    yield results


def _category(value: int) -> str:
    return textmend_pb2.Category.Name(value).removeprefix("CATEGORY_").lower()


def test_sample_is_spread_and_sourced() -> None:
    """Enough files over enough languages, each with its source and licence on disk."""
    entries = _manifest()
    assert len(entries) >= MIN_FILES
    assert len({e["language"].split("-")[0] for e in entries}) >= MIN_LANGUAGES
    assert any(e["content_type"] == "text/html" for e in entries)
    sources = (SAMPLE / "SOURCES.md").read_text(encoding="utf-8")
    for entry in entries:
        assert (SAMPLE / "files" / entry["path"]).is_file(), entry["path"]
        assert f"`{entry['path']}`" in sources, entry["path"]
        licence_file = entry["licence"].rsplit("(", 1)[1].rstrip(")")
        assert (SAMPLE / licence_file).is_file(), licence_file


def test_real_documents_come_back_unchanged(outcomes: list[Outcome]) -> None:
    """0 documents changed: the returned text is the text sent (`intended_text`)."""
    changed = [o for o in outcomes if o.response.text != o.sent]
    lines: list[str] = []
    for o in changed:
        kinds: dict[str, int] = {}
        for edit in o.response.edits:
            kinds[_category(edit.category)] = kinds.get(_category(edit.category), 0) + 1
        summary = ", ".join(f"{k} {v}" for k, v in kinds.items()) or "no edit listed"
        lines.append(f"{o.entry['path']} [{o.entry['content_type']}]: {summary}")
        for edit in list(o.response.edits)[:SHOW_EDITS]:
            lines.append(
                f"    {edit.original!r} → {edit.replacement!r} "
                f"({_category(edit.category)}: {edit.reason})"
            )
    count = len(changed)
    assert count == 0, (
        f"{count} of {len(outcomes)} real clean documents came back changed:\n" + "\n".join(lines)
    )


def test_repeated_block_is_rare(outcomes: list[Outcome]) -> None:
    """At most 1% of real clean documents carry a `repeated_block` finding."""
    flagged = [
        o
        for o in outcomes
        if any(f.category == textmend_pb2.CATEGORY_REPEATED_BLOCK for f in o.response.findings)
    ]
    allowed = int(REPEATED_BLOCK_SHARE * len(outcomes))
    lines = []
    for o in flagged:
        repeats = [
            f for f in o.response.findings if f.category == textmend_pb2.CATEGORY_REPEATED_BLOCK
        ]
        lines.append(f"{o.entry['path']}: {len(repeats)}, first {repeats[0].original[:60]!r}")
    count = len(flagged)
    assert count <= allowed, (
        f"{count} of {len(outcomes)} real clean documents have a repeated_block finding "
        f"(at most {allowed} allowed):\n" + "\n".join(lines)
    )
