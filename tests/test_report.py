"""The HTML report, from responses of the real server, checked as markup and in Chromium.

The structure tests parse the page: every edit is highlighted in both columns with its reason
on hover, invisible characters are badges (so a bidi override in a document cannot reorder
the report), nothing is loaded from elsewhere. The browser test opens the page in headless
Chromium, checks that it rendered and its script ran, and saves a screenshot to
`test-artifacts/report.png`. Without Chromium it is skipped, except under CI (the `CI`
environment variable), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pytest

from textmend.v1 import textmend_pb2
from textmend_client import TextMendClient
from textmend_client.report import (
    is_invisible,
    reconstruct_original,
    render_report,
    visible_text,
    write_report,
)

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "tests" / "fixtures" / "fortune-openai-departures.txt"
ARTIFACTS = ROOT / "test-artifacts"
BROWSER_TIMEOUT = 60

SMALL_NAME = "<b>menu</b> & notes.txt"
SMALL_DOC = (
    "Menu of the day\n"
    "cafÃ© au lait, 3 â‚¬\n"
    "invoice \u202eFDP.exe\u202c attached\n"
    "zero\u200bwidth and a bell\x07 and <p>markup</p>\n"
    "a lost character: \ufffd\n"
)

Documents = list[tuple[str, bytes, textmend_pb2.RepairResponse]]


@pytest.fixture(scope="module")
def documents(target: str) -> Documents:
    """The sample article, a small damaged document and a clean one, repaired by the server."""
    inputs = [
        (ARTICLE.name, ARTICLE.read_bytes()),
        (SMALL_NAME, SMALL_DOC.encode("utf-8")),
        ("clean.txt", b"Nothing to see here.\n"),
    ]
    with TextMendClient(target, timeout=60) as client:
        return [(name, data, client.repair(data, id=name)) for name, data in inputs]


@pytest.fixture(scope="module")
def page(documents: Documents) -> str:
    return render_report(documents, title="textmend report: tests")


# --- parsing the page ------------------------------------------------------------------------


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    text: list[str] = field(default_factory=list)


class _Collector(HTMLParser):
    """Every element with its attributes and its text content, nested text included."""

    VOID = frozenset({"meta", "br", "input", "img", "link", "hr", "wbr", "source"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.stack: list[Element] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {name: value or "" for name, value in attrs})
        self.elements.append(element)
        if tag not in self.VOID:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self.stack:
            if self.stack.pop().tag == tag:
                break

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.text.append(data)
        if self.stack and self.stack[-1].tag == "style":
            self.styles.append(data)


def parse(html_text: str) -> _Collector:
    collector = _Collector()
    collector.feed(html_text)
    collector.close()
    return collector


def by_key(collector: _Collector, tag: str) -> dict[str, Element]:
    return {
        e.attrs["data-k"]: e for e in collector.elements if e.tag == tag and "data-k" in e.attrs
    }


# --- reconstructing the original -------------------------------------------------------------


def test_reconstruct_original_gives_back_the_decoded_input(documents: Documents) -> None:
    for name, data, response in documents:
        original = reconstruct_original(response)
        assert original == data.decode("utf-8"), name
        assert len(original) == response.original_length


def test_reconstruct_original_refuses_edits_that_do_not_fit() -> None:
    misplaced = textmend_pb2.Edit(cleaned_start=0, cleaned_end=1, original="Ã©", replacement="é")
    with pytest.raises(ValueError, match="not its replacement"):
        reconstruct_original(textmend_pb2.RepairResponse(text="café", edits=[misplaced]))
    past_end = textmend_pb2.Edit(cleaned_start=3, cleaned_end=9, original="x", replacement="é")
    with pytest.raises(ValueError, match="does not follow"):
        reconstruct_original(textmend_pb2.RepairResponse(text="café", edits=[past_end]))


# --- structure -------------------------------------------------------------------------------


def test_every_edit_is_highlighted_in_both_columns(documents: Documents, page: str) -> None:
    collector = parse(page)
    inserted, deleted = by_key(collector, "ins"), by_key(collector, "del")
    total = 0
    for number, (name, _, response) in enumerate(documents, start=1):
        for index, edit in enumerate(response.edits):
            key = f"d{number}-e{index}"
            assert key in inserted and key in deleted, f"{name}: edit {index} is not shown"
            new, old = inserted[key], deleted[key]
            assert "".join(new.text) == visible_text(edit.replacement)
            assert "".join(old.text) == visible_text(edit.original)
            for element in (new, old):
                assert "edit" in element.attrs["class"].split()
                assert edit.reason in element.attrs["title"]
                assert f"{edit.confidence:.2f}" in element.attrs["title"]
            total += 1
    assert total == sum(len(r.edits) for _, _, r in documents) > 200


def test_findings_are_outlined_with_their_suggestion(documents: Documents, page: str) -> None:
    collector = parse(page)
    outlined = [e for e in collector.elements if "find" in e.attrs.get("class", "").split()]
    keys = {e.attrs["data-k"] for e in outlined}
    for number, (_, _, response) in enumerate(documents, start=1):
        for index, finding in enumerate(response.findings):
            key = f"d{number}-f{index}"
            assert key in keys, f"finding {key} ({finding.reason}) is not outlined"
            titles = [e.attrs["title"] for e in outlined if e.attrs["data-k"] == key]
            assert all(finding.reason in title for title in titles)
            if finding.suggestion:
                assert all("suggestion: " in title for title in titles)
    assert ".find {" in page and "dashed" in page


def test_bidi_override_and_other_invisibles_are_shown_not_obeyed(page: str) -> None:
    assert "\u202e" not in page and "\u200b" not in page and "\x07" not in page
    assert not [ch for ch in page if ch not in "\t\n" and is_invisible(ch)]
    collector = parse(page)
    badges = {"".join(e.text) for e in collector.elements if e.attrs.get("class") == "inv"}
    assert {"⟨U+202E⟩", "⟨U+202C⟩", "⟨U+200B⟩", "⟨U+0007⟩"} <= badges
    names = {e.attrs["title"] for e in collector.elements if e.attrs.get("class") == "inv"}
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in names


def test_document_text_and_names_are_escaped(page: str) -> None:
    assert "<b>menu</b>" not in page and "&lt;b&gt;menu&lt;/b&gt; &amp; notes.txt" in page
    assert "<p>markup</p>" not in page and "&lt;p&gt;" in page
    collector = parse(page)
    assert [e.tag for e in collector.elements if e.tag == "script"] == ["script"]


def test_page_loads_nothing_from_elsewhere(page: str) -> None:
    collector = parse(page)
    tags = {e.tag for e in collector.elements}
    assert not tags & {"link", "img", "iframe", "object", "embed", "audio", "video", "source"}
    for element in collector.elements:
        for name, value in element.attrs.items():
            assert name not in {"src", "srcset", "action", "formaction", "poster", "background"}
            if name == "href":
                assert value.startswith("#"), value
    css = "".join(collector.styles)
    assert "url(" not in css and "@import" not in css
    (policy,) = [
        e.attrs["content"]
        for e in collector.elements
        if e.tag == "meta" and e.attrs.get("http-equiv") == "Content-Security-Policy"
    ]
    assert policy.startswith("default-src 'none'")


def test_summary_counts_verdicts_categories_and_encodings(page: str) -> None:
    for count, verdict in [(1, "clean"), (1, "repaired"), (1, "suspect"), (0, "unreadable")]:
        assert f'<b>{count}</b><span class="verdict v-{verdict}">{verdict}</span>' in page
    for category in ("ruby_leak", "cjk_phase_slip", "mojibake", "bidi_control"):
        assert f'data-cat="{category}"' in page
    assert "<td>utf-8</td>" in page


def test_large_document_is_cut_down(target: str) -> None:
    lines = [
        f"Line {i}: {'a cafÃ© order' if i % 10 == 0 else 'an ordinary sentence'} number {i}."
        for i in range(6000)
    ]
    data = ("\n".join(lines) + "\n").encode("utf-8")
    with TextMendClient(target, timeout=120) as client:
        response = client.repair(data, omit_diff=True)
    assert len(response.edits) == 600
    page = render_report([("big.txt", data, response)])
    assert re.search(r"⋯ \d+ unchanged lines ⋯", page)
    assert "Display cut short for size" in page
    shown = len(by_key(parse(page), "ins"))
    assert 0 < shown < len(response.edits)
    assert len(page) < 1_000_000


def test_write_report_writes_utf8(tmp_path: Path, documents: Documents) -> None:
    path = tmp_path / "report.html"
    write_report(path, documents)
    assert path.read_text(encoding="utf-8") == render_report(documents)


# --- in a browser ----------------------------------------------------------------------------


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "Chromium is not installed (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run the browser test")
    pytest.skip(message)


def _browser(chromium: str, profile: Path, *options: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *options,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def report_file(page: str) -> Iterator[Path]:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / "report.html"
    path.write_text(page, encoding="utf-8")
    yield path


def test_report_renders_in_chromium(report_file: Path, page: str, tmp_path: Path) -> None:
    chromium = _chromium()
    result = _browser(chromium, tmp_path / "profile-dom", "--dump-dom", report_file.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert re.search(r'<html[^>]*data-js="ready"', dom), "the page's script did not run"
    collector = parse(dom)
    rendered = [e for e in collector.elements if "edit" in e.attrs.get("class", "").split()]
    expected = [e for e in parse(page).elements if "edit" in e.attrs.get("class", "").split()]
    assert len(rendered) == len(expected) > 0
    assert "⟨U+202E⟩" in dom


def test_report_screenshot(report_file: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    result = _browser(
        chromium,
        tmp_path / "profile-shot",
        f"--screenshot={screenshot}",
        "--window-size=1280,2000",
        report_file.as_uri(),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    image = screenshot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1280, 2000)
    assert len(image) > 50_000, "the screenshot is nearly empty"
