"""An HTML report of repaired documents, for a person to review what textmend did and why.

`render_report` turns `(name, content, response)` triples into one self-contained HTML page:
a summary (verdicts, edits and findings per category, encodings seen), then per document
the decoded original and the cleaned text side by side, every edit highlighted in both
columns in its category's colour, every finding outlined with a dashed border. Hovering a
highlight shows its category, reason, confidence and (for a finding) the suggested repair.

The page loads nothing: styles and the small script are inline, and a Content-Security-Policy
forbids any other source, so it can be mailed, archived or opened offline. Everything taken
from a document is HTML-escaped, and invisible characters (controls, zero-width characters,
bidi overrides and isolates, unassigned and private-use code points) are drawn as badges such
as ``⟨U+202E⟩``: a document cannot hide or reorder what the report shows.

Large documents are cut down: only the lines around edits and findings are rendered (with
`CONTEXT_LINES` lines of context, at most `CONTEXT_CHARS` characters either side on long
lines), the rest is replaced by an "N unchanged lines" marker, and at most `MAX_MARKS` edits
and findings and `MAX_RENDERED_CHARS` characters are shown per document, with a note saying
how many more there are. A 10 MB document thus yields a page of at most a megabyte or two; the
JSON response (`textmend repair --format json`) has everything.

`repair_files` walks files and directories and repairs each file; `textmend report` and
`textmend check` share it. `run_report` is the command's body.
"""

from __future__ import annotations

import bisect
import html
import itertools
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from textmend.v1 import textmend_pb2
from textmend_client.client import TextMendClient
from textmend_client.files import (
    EXIT_IO,
    EXIT_OK,
    EXIT_SERVER,
    repair_files,
    report_outcome,
    warn,
)
from textmend_client.visible import CANDIDATES, code_point, is_invisible, visible_text

__all__ = [
    "CONTEXT_CHARS",
    "CONTEXT_LINES",
    "MAX_MARKS",
    "MAX_RENDERED_CHARS",
    "LineIndex",
    "category_name",
    "is_invisible",
    "reconstruct_original",
    "render_report",
    "report_outcome",
    "run_report",
    "verdict_name",
    "visible_text",
    "write_report",
]

#: Lines of unchanged text shown before and after each edit or finding.
CONTEXT_LINES = 2
#: On long lines, characters of context shown at most on either side of an edit or finding.
CONTEXT_CHARS = 240
#: Edits plus findings highlighted at most per document; later ones are counted, not shown.
MAX_MARKS = 1000
#: Characters of original text rendered at most per document.
MAX_RENDERED_CHARS = 100_000
#: Characters shown at most inside one highlight; a longer span shows its head and tail.
MAX_SPAN_CHARS = 600
#: Characters of a span quoted at most in a tooltip.
MAX_TITLE_CHARS = 160

# --- text helpers ----------------------------------------------------------------------------


def _char_name(ch: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`, or just the code point when it has no name."""
    name = unicodedata.name(ch, "")
    return f"{code_point(ch)} {name}" if name else code_point(ch)


def _visible_html(text: str) -> str:
    """HTML-escaped text with invisible characters as badges naming them."""
    out: list[str] = []
    last = 0
    for match in CANDIDATES.finditer(text):
        ch = match[0]
        if not is_invisible(ch):
            continue
        out.append(html.escape(text[last : match.start()]))
        out.append(
            f'<span class="inv" title="{html.escape(_char_name(ch))}">⟨{code_point(ch)}⟩</span>'
        )
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def _quote(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    """A short, quoted, visible rendering of a span, for tooltips."""
    shown = visible_text(text).replace("\n", "⏎")
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"‘{shown}’"


def _build_category_names() -> dict[int, str]:
    return {
        value: name.removeprefix("CATEGORY_").lower()
        for name, value in textmend_pb2.Category.items()
    }


_CATEGORY_NAMES = _build_category_names()


def category_name(value: int) -> str:
    """`mojibake` for CATEGORY_MOJIBAKE; `unknown` for a value this client does not know.

    >>> category_name(textmend_pb2.CATEGORY_RUBY_LEAK), category_name(999)
    ('ruby_leak', 'unknown')
    """
    return _CATEGORY_NAMES.get(value, "unknown")


def verdict_name(response: textmend_pb2.RepairResponse) -> str:
    """`clean`, `repaired`, `suspect` or `unreadable`; `failed` for a stream error."""
    if response.HasField("error"):
        return "failed"
    if response.verdict not in textmend_pb2.Verdict.values() or not response.verdict:
        return "unknown"
    return textmend_pb2.Verdict.Name(response.verdict).removeprefix("VERDICT_").lower()


# --- offsets ---------------------------------------------------------------------------------


def reconstruct_original(response: textmend_pb2.RepairResponse) -> str:
    """The decoded original text: `response.text` with each edit's replacement put back.

    Every edit says where its replacement stands in the cleaned text (`cleaned_start`,
    `cleaned_end`) and what stood there before (`original`), so undoing the edits in order
    gives the text the server repaired, with no need to decode the bytes again. Raises
    `ValueError` when the edits do not line up with the text (a response from an
    incompatible server).

    >>> edit = textmend_pb2.Edit(cleaned_start=3, cleaned_end=4, original="Ã©", replacement="é")
    >>> reconstruct_original(textmend_pb2.RepairResponse(text="café", edits=[edit]))
    'cafÃ©'
    """
    text = response.text
    pieces: list[str] = []
    position = 0
    for index, edit in enumerate(response.edits):
        start, end = edit.cleaned_start, edit.cleaned_end
        if not position <= start <= end <= len(text):
            raise ValueError(
                f"edit {index} spans {start}..{end} of the cleaned text, which does not follow "
                f"the previous edit (ending at {position}) within the text's {len(text)} code "
                "points"
            )
        if text[start:end] != edit.replacement:
            raise ValueError(
                f"edit {index}: the cleaned text at {start}..{end} is not its replacement"
            )
        pieces.append(text[position:start])
        pieces.append(edit.original)
        position = end
    pieces.append(text[position:])
    original = "".join(pieces)
    if response.original_length and len(original) != response.original_length:
        raise ValueError(
            f"undoing the edits gives {len(original)} code points, not the original_length "
            f"{response.original_length} the server reported"
        )
    return original


class LineIndex:
    """Line starts of a text, for turning code point offsets into lines and columns."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def index(self, offset: int) -> int:
        """0-based index of the line holding offset."""
        return bisect.bisect_right(self.starts, offset) - 1

    def start(self, index: int) -> int:
        """Offset where line `index` starts (the text's length past the last line)."""
        return self.starts[index] if index < len(self.starts) else self.length

    def position(self, offset: int) -> tuple[int, int]:
        r"""Line and column of offset, both counting from 1.

        >>> LineIndex("ab\ncd").position(4)
        (2, 2)
        """
        index = self.index(offset)
        return index + 1, offset - self.starts[index] + 1


# --- marks: edits and findings placed in one column ------------------------------------------


@dataclass(frozen=True)
class _Mark:
    """An edit or finding at [start, end) of one column's text."""

    start: int
    end: int
    key: str  # shared by the same edit or finding in both columns, for the hover link
    category: str
    source: textmend_pb2.Edit  # the edit or finding, for the tooltip, made only when shown
    finding: bool

    @property
    def title(self) -> str:
        return _finding_title(self.source) if self.finding else _edit_title(self.source)


def _edit_title(edit: textmend_pb2.Edit) -> str:
    return (
        f"{category_name(edit.category)}: {edit.reason} (confidence {edit.confidence:.2f})\n"
        f"{_quote(edit.original)} → {_quote(edit.replacement)}"
    )


def _finding_title(finding: textmend_pb2.Edit) -> str:
    title = (
        f"{category_name(finding.category)} (finding, left unchanged): {finding.reason} "
        f"(confidence {finding.confidence:.2f})"
    )
    if finding.suggestion:
        title += f"\nsuggestion: {_quote(finding.suggestion)}"
    return title


def _snap(start: int, end: int, edits: Sequence[_Mark], starts: Sequence[int]) -> tuple[int, int]:
    """Widen [start, end) so that neither end falls strictly inside an edit."""
    i = bisect.bisect_right(starts, start) - 1
    if i >= 0 and edits[i].start < start < edits[i].end:
        start = edits[i].start
    j = bisect.bisect_left(starts, end) - 1
    if j >= 0 and edits[j].start < end < edits[j].end:
        end = edits[j].end
    return start, end


def _snap_excerpt(
    start: int, end: int, edits: Sequence[_Mark], starts: Sequence[int]
) -> tuple[int, int]:
    """Widen an excerpt so that it holds whole edits and no edit ends exactly at its start.

    An edit that ends where an excerpt starts would fall in neither column's excerpt on one
    side and in it on the other (a deletion is empty in the cleaned text), so it is taken in.
    """
    i = bisect.bisect_left(starts, start) - 1
    while i >= 0 and edits[i].end >= start:
        start = edits[i].start
        i -= 1
    j = bisect.bisect_right(starts, end) - 1
    if j >= 0 and edits[j].end > end:
        end = edits[j].end
    return start, end


class _Column:
    """One side of the comparison: its text, lines, edits and findings."""

    def __init__(self, text: str, edits: list[_Mark], findings: list[_Mark], tag: str) -> None:
        self.text = text
        self.lines = LineIndex(text)
        self.edits = edits
        self.edit_starts = [mark.start for mark in edits]
        self.findings = findings  # sorted by start
        self.finding_starts = [mark.start for mark in findings]
        # The furthest end among the first i + 1 findings: findings before the first index
        # whose value reaches an excerpt's start all end before it.
        self.finding_reach = list(itertools.accumulate((m.end for m in findings), max))
        self.tag = tag  # "del" for the original, "ins" for the cleaned text

    def edits_in(self, a: int, b: int) -> list[int]:
        """Indices of the edits that belong to the excerpt [a, b).

        Those inside it, and empty ones at its start, or at its end when that is the text's.
        """
        at_end = b == len(self.text)
        lo = bisect.bisect_left(self.edit_starts, a)
        hi = bisect.bisect_right(self.edit_starts, b)
        return [
            i
            for i in range(lo, hi)
            if self.edits[i].end <= b
            and (self.edits[i].start < b or (at_end and self.edits[i].start == self.edits[i].end))
        ]

    def render(self, a: int, b: int, indices: Sequence[int]) -> str:
        """HTML for [a, b) of the text: line numbers, the edits given by index, findings,
        invisible characters as badges."""
        text = self.text
        edits = [self.edits[i] for i in indices]
        edit_at = {m.start: m for m in edits if m.end > m.start}
        inserts: dict[int, list[_Mark]] = {}
        for mark in edits:
            if mark.end == mark.start:
                inserts.setdefault(mark.start, []).append(mark)
        findings: list[_Mark] = []
        first = bisect.bisect_left(self.finding_reach, a)
        last = bisect.bisect_right(self.finding_starts, b)
        for mark in self.findings[first:last]:
            if mark.start > b or (mark.end < a) or (mark.end == a and mark.start < a):
                continue
            start, end = _snap(max(mark.start, a), min(mark.end, b), self.edits, self.edit_starts)
            if mark.start == mark.end or start < end:
                findings.append(
                    _Mark(start, end, mark.key, mark.category, mark.source, True)
                    if (start, end) != (mark.start, mark.end)
                    else mark
                )
        cuts = {a, b}
        for mark in edits:
            cuts.update((mark.start, mark.end))
        for mark in findings:
            cuts.update((mark.start, mark.end))
        for match in re.finditer("\n", text[a:b]):
            cuts.update((a + match.start(), a + match.end()))
        order = sorted(cut for cut in cuts if a <= cut <= b)

        line = self.lines.index(a) + 1
        mid_line = a != self.lines.start(line - 1)
        out = [_line_marker(line, continued=mid_line)]
        opened: tuple[_Mark, ...] = ()
        position = a
        for cut in order[1:]:
            if cut <= position:
                continue
            for mark in inserts.get(position, ()):
                out.append(self._edit_html(mark, ""))
            for mark in findings:
                if mark.start == mark.end == position:
                    out.append(_finding_open(mark) + "</span>")
            edit = edit_at.get(position)
            end = edit.end if edit else cut
            if not edit and text[position:end] == "\n":
                out.append("</span>" * len(opened))
                opened = ()
                line += 1
                # No number for a line whose text is not in this excerpt.
                out.append("\n" + (_line_marker(line) if end < b else ""))
                position = end
                continue
            active = tuple(m for m in findings if m.start <= position and m.end >= end > m.start)
            if active != opened:
                out.append("</span>" * len(opened))
                out.extend(_finding_open(mark) for mark in active)
                opened = active
            if edit:
                body, line = _span_html(text[position:end], line)
                out.append(self._edit_html(edit, body))
            else:
                out.append(_visible_html(text[position:end]))
            position = end
        out.append("</span>" * len(opened))
        for mark in inserts.get(b, ()):
            out.append(self._edit_html(mark, ""))
        return "".join(out)

    def _edit_html(self, mark: _Mark, body: str) -> str:
        empty = "" if body else " empty"
        return (
            f'<{self.tag} class="edit c-{mark.category}{empty}" data-k="{mark.key}" '
            f'title="{html.escape(mark.title)}">{body}</{self.tag}>'
        )


def _line_marker(number: int, *, continued: bool = False) -> str:
    extra = " cont" if continued else ""
    return f'<span class="ln{extra}" data-n="{number}"></span>'


def _finding_open(mark: _Mark) -> str:
    return (
        f'<span class="find c-{mark.category}" data-k="{mark.key}" '
        f'title="{html.escape(mark.title)}">'
    )


def _span_html(text: str, line: int) -> tuple[str, int]:
    """The inside of one highlight, its head and tail only when long; returns the line after."""
    if len(text) > MAX_SPAN_CHARS:
        half = MAX_SPAN_CHARS // 2
        head, middle, tail = text[:half], text[half:-half], text[-half:]
        parts = [(head, True), (f"⋯ {len(middle)} more characters ⋯", False), (tail, True)]
        skipped_lines = middle.count("\n")
    else:
        parts, skipped_lines = [(text, True)], 0
    out: list[str] = []
    for part, literal in parts:
        if not literal:
            out.append(f'<span class="elided">{html.escape(part)}</span>')
            line += skipped_lines
            continue
        pieces = part.split("\n")
        out.append(_visible_html(pieces[0]))
        for piece in pieces[1:]:
            line += 1
            out.append("\n" + _line_marker(line) + _visible_html(piece))
    return "".join(out), line


# --- choosing what to show -------------------------------------------------------------------


@dataclass(frozen=True)
class _Excerpts:
    """The stretches of the original to render, and what was left out for size."""

    ranges: list[tuple[int, int]]
    hidden_edits: int
    hidden_findings: int


def _excerpts(
    lines: LineIndex,
    edits: Sequence[textmend_pb2.Edit],
    findings: Sequence[textmend_pb2.Edit],
    edit_marks: Sequence[_Mark],
    edit_starts: Sequence[int],
) -> _Excerpts:
    """Stretches of the original around each edit and finding, merged, within the limits.

    Each edit or finding gets its lines plus `CONTEXT_LINES` either side, at most
    `CONTEXT_CHARS` characters from it; a long one (a repeated block) gets its first and last
    lines only. Marks are taken in text order until `MAX_MARKS` of them or
    `MAX_RENDERED_CHARS` characters are reached.
    """
    marks = sorted(
        [(e.original_start, e.original_end, True) for e in edits]
        + [(f.original_start, f.original_end, False) for f in findings]
    )
    pieces: list[tuple[int, int]] = []
    budget = MAX_RENDERED_CHARS
    taken = 0
    for start, end, _ in marks:
        if taken >= MAX_MARKS or budget <= 0:
            break
        taken += 1
        if pieces and pieces[-1][0] <= start and end <= pieces[-1][1]:
            continue  # already on show
        spots = [(start, end)]
        if end - start > 2 * CONTEXT_CHARS:
            spots = [(start, start), (end, end)]
        for spot_start, spot_end in spots:
            first = lines.index(spot_start)
            last = lines.index(max(spot_start, spot_end - 1))
            lo = max(lines.start(max(0, first - CONTEXT_LINES)), spot_start - CONTEXT_CHARS, 0)
            hi = min(lines.start(last + 1 + CONTEXT_LINES), spot_end + CONTEXT_CHARS)
            lo, hi = _snap_excerpt(lo, min(hi, lines.length), edit_marks, edit_starts)
            pieces.append((lo, hi))
            budget -= hi - lo
    ranges: list[tuple[int, int]] = []
    for lo, hi in sorted(pieces):
        # Join excerpts that touch or are a few characters apart: a marker would be longer.
        if ranges and lo <= ranges[-1][1] + 16:
            ranges[-1] = (ranges[-1][0], max(hi, ranges[-1][1]))
        else:
            ranges.append((lo, hi))
    range_starts = [lo for lo, _ in ranges]

    def on_show(offset: int) -> bool:
        i = bisect.bisect_right(range_starts, offset) - 1
        return i >= 0 and offset < ranges[i][1]

    rest = marks[taken:]
    hidden_edits = sum(1 for start, _, is_edit in rest if is_edit and not on_show(start))
    hidden_findings = sum(1 for start, _, is_edit in rest if not is_edit and not on_show(start))
    return _Excerpts(ranges, hidden_edits, hidden_findings)


def _to_cleaned(edits: Sequence[textmend_pb2.Edit], ends: Sequence[int], offset: int) -> int:
    """Where an original offset that is not inside an edit stands in the cleaned text.

    An edit ending at the offset counts as before it, an insertion at the offset as after it.
    """
    i = bisect.bisect_left(ends, offset)
    while i < len(edits) and edits[i].original_end == offset and edits[i].original_start < offset:
        i += 1
    if i == 0:
        return offset
    edit = edits[i - 1]
    return edit.cleaned_end + (offset - edit.original_end)


# --- the page --------------------------------------------------------------------------------

# One hue per category, so that the same kind of damage looks the same everywhere.
_HUES: Mapping[str, int] = {
    "undecodable": 0,
    "encoding": 30,
    "mojibake": 48,
    "cjk_phase_slip": 90,
    "cjk_wrong_codec": 130,
    "ruby_leak": 165,
    "markup_leak": 195,
    "control_char": 215,
    "replacement_char": 240,
    "private_use": 265,
    "noncharacter": 285,
    "stray_bom": 305,
    "zero_width": 325,
    "bidi_control": 345,
    "repeated_block": 20,
    "unknown": 0,
}

_VERDICTS = ("clean", "repaired", "suspect", "unreadable", "failed")

_CSS = """
:root { color-scheme: light; --fg: #1d1f23; --muted: #6a7079; --line: #d9dce1; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, sans-serif; color: var(--fg); margin: 0 auto;
  padding: 1.5rem; max-width: 1600px; background: #fbfbfc; }
h1 { font-size: 1.5rem; margin: 0 0 1rem; }
h2 { font-size: 1.15rem; margin: 0; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .25rem 0 1rem; }
th, td { text-align: left; padding: .2rem .7rem .2rem 0; border-bottom: 1px solid var(--line);
  vertical-align: top; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.tiles { display: flex; gap: .75rem; flex-wrap: wrap; margin-bottom: 1rem; }
.tile { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem;
  background: #fff; min-width: 7rem; }
.tile b { display: block; font-size: 1.4rem; }
.summary-grid { display: flex; gap: 2.5rem; flex-wrap: wrap; }
.verdict { display: inline-block; padding: 0 .45rem; border-radius: 4px; font-weight: 600;
  font-size: .85rem; }
.v-clean { background: #dff3e4; color: #155724; }
.v-repaired { background: #dde9fb; color: #12407a; }
.v-suspect { background: #fff0c2; color: #6b4a00; }
.v-unreadable, .v-failed, .v-unknown { background: #fbdada; color: #7a1010; }
.doc { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1rem; margin: 1.25rem 0; }
.meta { color: var(--muted); margin: .3rem 0 .8rem; overflow-wrap: anywhere; }
.note { color: var(--muted); font-style: italic; margin: .5rem 0; }
.warn { color: #7a1010; }
.cmp { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1rem; }
.colhead { font-weight: 600; color: var(--muted); padding-bottom: .25rem; }
.side { margin: 0; padding: .35rem .5rem; background: #f6f7f9; border-radius: 4px;
  font: 13px/1.55 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  white-space: pre-wrap; overflow-wrap: anywhere; unicode-bidi: isolate; }
.gap { grid-column: 1 / -1; text-align: center; color: var(--muted); font-size: .85rem;
  padding: .3rem 0; }
.ln::before { content: attr(data-n); display: inline-block; min-width: 3.5ch;
  margin-right: 1ch; color: #9aa0a8; text-align: right; user-select: none; }
.ln.cont::before { content: "…" attr(data-n); }
.edit { text-decoration: none; border-radius: 3px; padding: 0 1px; unicode-bidi: isolate; }
del.edit { text-decoration: line-through; text-decoration-thickness: 1px; }
.edit.empty::after { content: "∅"; font-size: .8em; opacity: .7; }
.find { border: 1.5px dashed; border-radius: 3px; unicode-bidi: isolate; }
.find:empty::after { content: "◇"; font-size: .8em; }
.inv { display: inline-block; font-size: .75em; line-height: 1.2; padding: 0 2px;
  margin: 0 1px; border: 1px solid #b3261e; border-radius: 3px; color: #b3261e;
  background: #fff; unicode-bidi: isolate; direction: ltr; }
.elided { color: var(--muted); font-style: italic; }
.hot { outline: 2px solid #111; outline-offset: 1px; }
.swatch { display: inline-block; width: .9em; height: .9em; border-radius: 2px;
  vertical-align: -1px; margin-right: .35em; }
.find-swatch { background: transparent !important; border: 1.5px dashed; }
details { margin-top: .75rem; }
summary { cursor: pointer; color: var(--muted); }
.problems td { font-size: 13px; }
.problems code { font: 12px ui-monospace, monospace; overflow-wrap: anywhere; }
label.filter { margin-right: .8rem; white-space: nowrap; }
body.only-problems .doc.is-clean { display: none; }
"""

_SCRIPT = """
(function () {
  "use strict";
  var root = document.documentElement;
  // Hovering an edit or finding outlines it in both columns.
  var hot = [];
  document.addEventListener("mouseover", function (event) {
    var target = event.target.closest ? event.target.closest("[data-k]") : null;
    hot.forEach(function (el) { el.classList.remove("hot"); });
    hot = [];
    if (!target) { return; }
    var key = target.getAttribute("data-k");
    document.querySelectorAll('[data-k="' + key + '"]').forEach(function (el) {
      el.classList.add("hot");
      hot.push(el);
    });
  });
  // Category filters: unticking a category takes its colour off every highlight.
  document.querySelectorAll("input[data-cat]").forEach(function (box) {
    box.addEventListener("change", function () {
      document.body.classList.toggle("off-" + box.getAttribute("data-cat"), !box.checked);
    });
  });
  var only = document.getElementById("only-problems");
  if (only) {
    only.addEventListener("change", function () {
      document.body.classList.toggle("only-problems", only.checked);
    });
  }
  root.setAttribute("data-js", "ready");
})();
"""

# No network, no plugins, no frames: only the inline style and script.
_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; base-uri 'none'; form-action 'none'"
)


def _category_css() -> str:
    rules = []
    for name, hue in _HUES.items():
        rules.append(
            f".edit.c-{name}, .swatch.c-{name} {{ background: hsl({hue} 85% 80%); }}\n"
            f"ins.edit.c-{name} {{ background: hsl({hue} 75% 72%); }}\n"
            f".find.c-{name}, .find-swatch.c-{name} {{ border-color: hsl({hue} 70% 38%); }}\n"
            f"body.off-{name} .c-{name} {{ background: transparent; border-color: transparent; }}"
        )
    return "\n".join(rules)


def _encoding_label(response: textmend_pb2.RepairResponse) -> str:
    encoding = response.encoding
    source = textmend_pb2.EncodingInfo.Source.Name(encoding.source).removeprefix("SOURCE_")
    label = f"{encoding.name or '?'} ({source.lower()}, confidence {encoding.confidence:.2f})"
    if encoding.declared:
        label += f"; declared {encoding.declared}"
    if encoding.overruled:
        label += f", overruled: {encoding.overruled}"
    return label


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _position(lines: LineIndex, offset: int) -> str:
    line, column = lines.position(offset)
    return f"{line}:{column}"


def _problem_rows(
    response: textmend_pb2.RepairResponse, lines: LineIndex | None, key_prefix: str
) -> list[str]:
    """One table row per edit and finding (at most `MAX_MARKS`), in text order."""
    items = [(e.original_start, 0, i, e) for i, e in enumerate(response.edits)]
    items += [(f.original_start, 1, i, f) for i, f in enumerate(response.findings)]
    items.sort(key=lambda item: (item[0], item[1], item[2]))
    rows = []
    for start, is_finding, index, item in items[:MAX_MARKS]:
        where = _position(lines, start) if lines else str(start)
        proposed = item.suggestion if is_finding else item.replacement
        change = _quote(item.original, 80)
        if not is_finding or proposed:
            change += " → " + _quote(proposed, 80)
        key = f"{key_prefix}-{'f' if is_finding else 'e'}{index}"
        rows.append(
            f'<tr data-k="{key}"><td class="n">{where}</td>'
            f'<td><span class="swatch c-{category_name(item.category)}'
            f'{" find-swatch" if is_finding else ""}"></span>'
            f"{category_name(item.category)}</td>"
            f"<td>{'finding' if is_finding else 'edit'}</td>"
            f"<td><code>{html.escape(change)}</code></td>"
            f"<td>{html.escape(visible_text(item.reason))}</td>"
            f'<td class="n">{item.confidence:.2f}</td></tr>'
        )
    return rows


def _document_html(
    number: int, name: str, content: bytes, response: textmend_pb2.RepairResponse
) -> str:
    verdict = verdict_name(response)
    key_prefix = f"d{number}"
    out = [
        f'<section class="doc is-{verdict}" id="doc-{number}">',
        f"<h2>{_visible_html(name)}</h2>",
    ]
    if response.HasField("error"):
        out.append(
            f'<p class="meta"><span class="verdict v-failed">failed</span> · '
            f"{html.escape(response.error.code)}: {_visible_html(response.error.message)}</p>"
        )
        out.append("</section>")
        return "\n".join(out)
    edits, findings = list(response.edits), list(response.findings)
    out.append(
        f'<p class="meta"><span class="verdict v-{verdict}">{verdict}</span> · '
        f"{html.escape(visible_text(_encoding_label(response)))} · "
        f"{_plural(len(edits), 'edit')} · {_plural(len(findings), 'finding')} · "
        f"{_plural(len(content), 'byte')}, {_plural(len(response.text), 'character')} cleaned</p>"
    )
    if not edits and not findings:
        out.append('<p class="note">Nothing to show: no edits and no findings.</p></section>')
        return "\n".join(out)
    try:
        original = reconstruct_original(response)
    except ValueError as exc:
        out.append(
            f'<p class="note warn">The edits do not line up with the text, so it cannot be '
            f"shown side by side: {html.escape(str(exc))}</p></section>"
        )
        return "\n".join(out)

    edit_info = [
        (f"{key_prefix}-e{i}", category_name(e.category), e, False) for i, e in enumerate(edits)
    ]
    original_edits = [
        _Mark(e.original_start, e.original_end, *info)
        for e, info in zip(edits, edit_info, strict=True)
    ]
    cleaned_edits = [
        _Mark(e.cleaned_start, e.cleaned_end, *info)
        for e, info in zip(edits, edit_info, strict=True)
    ]
    finding_marks = [
        (f, f"{key_prefix}-f{i}", category_name(f.category)) for i, f in enumerate(findings)
    ]
    left = _Column(
        original,
        original_edits,
        sorted(
            (_Mark(f.original_start, f.original_end, k, c, f, True) for f, k, c in finding_marks),
            key=lambda m: (m.start, -m.end),
        ),
        "del",
    )
    right = _Column(
        response.text,
        cleaned_edits,
        sorted(
            (_Mark(f.cleaned_start, f.cleaned_end, k, c, f, True) for f, k, c in finding_marks),
            key=lambda m: (m.start, -m.end),
        ),
        "ins",
    )
    excerpts = _excerpts(left.lines, edits, findings, original_edits, left.edit_starts)
    ends = [e.original_end for e in edits]
    out.append('<div class="cmp"><div class="colhead">original</div>')
    out.append('<div class="colhead">cleaned</div>')
    previous_end = 0
    for a, b in excerpts.ranges:
        out.append(_gap_html(original, previous_end, a))
        indices = left.edits_in(a, b)
        # The same edits on both sides, whatever their cleaned spans: they are matched by index.
        ca = _to_cleaned(edits, ends, a)
        cb = len(response.text) if b == len(original) else _to_cleaned(edits, ends, b)
        if indices:
            ca = min(ca, edits[indices[0]].cleaned_start)
            cb = max(cb, edits[indices[-1]].cleaned_end)
        out.append(f'<pre class="side orig">{left.render(a, b, indices)}</pre>')
        out.append(f'<pre class="side clean">{right.render(ca, cb, indices)}</pre>')
        previous_end = b
    if excerpts.hidden_edits or excerpts.hidden_findings:
        out.append(
            f'<div class="gap warn">Display cut short for size: '
            f"{_plural(excerpts.hidden_edits, 'more edit')} and "
            f"{_plural(excerpts.hidden_findings, 'more finding')} after this point are not "
            f"shown (the JSON response has them all).</div>"
        )
    else:
        out.append(_gap_html(original, previous_end, len(original)))
    out.append("</div>")
    rows = _problem_rows(response, left.lines, key_prefix)
    more = len(edits) + len(findings) - len(rows)
    out.append(
        f"<details><summary>{_plural(len(edits), 'edit')} and "
        f"{_plural(len(findings), 'finding')} as a list</summary>"
        '<table class="problems"><tr><th class="n">line:col</th><th>category</th><th>kind</th>'
        '<th>change</th><th>reason</th><th class="n">confidence</th></tr>'
        + "".join(rows)
        + "</table>"
        + (f'<p class="note">{more} more not listed.</p>' if more > 0 else "")
        + "</details>"
    )
    out.append("</section>")
    return "\n".join(out)


def _gap_html(text: str, start: int, end: int) -> str:
    """The marker for an unchanged stretch left out of the page, or nothing when empty."""
    if end <= start:
        return ""
    lines = text.count("\n", start, end)
    size = (
        _plural(lines, "unchanged line") if lines else _plural(end - start, "unchanged character")
    )
    return f'<div class="gap">⋯ {size} ⋯</div>'


def _summary_html(
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
) -> str:
    verdicts = Counter(verdict_name(response) for _, _, response in documents)
    edits = Counter(category_name(e.category) for _, _, r in documents for e in r.edits)
    findings = Counter(category_name(f.category) for _, _, r in documents for f in r.findings)
    encodings = Counter(r.encoding.name for _, _, r in documents if r.encoding.name)
    out = ['<section id="summary">', '<div class="tiles">']
    out.append(f'<div class="tile"><b>{len(documents)}</b>documents</div>')
    for verdict in _VERDICTS:
        if verdict == "failed" and not verdicts[verdict]:
            continue
        out.append(
            f'<div class="tile"><b>{verdicts[verdict]}</b>'
            f'<span class="verdict v-{verdict}">{verdict}</span></div>'
        )
    out.append("</div>")
    out.append('<div class="summary-grid"><div><h3>Edits and findings by category</h3>')
    categories = sorted(set(edits) | set(findings), key=lambda c: (-edits[c] - findings[c], c))
    if categories:
        out.append(
            '<table><tr><th>category</th><th class="n">edits</th>'
            '<th class="n">findings</th><th>show</th></tr>'
        )
        for name in categories:
            out.append(
                f'<tr><td><span class="swatch c-{name}"></span>{name}</td>'
                f'<td class="n">{edits[name]}</td><td class="n">{findings[name]}</td>'
                f'<td><input type="checkbox" checked data-cat="{name}" '
                f'aria-label="highlight {name}"></td></tr>'
            )
        out.append("</table>")
    else:
        out.append('<p class="note">None.</p>')
    out.append("</div><div><h3>Encodings</h3>")
    if encodings:
        out.append('<table><tr><th>encoding</th><th class="n">documents</th></tr>')
        for name, count in encodings.most_common():
            out.append(f'<tr><td>{_visible_html(name)}</td><td class="n">{count}</td></tr>')
        out.append("</table>")
    else:
        out.append('<p class="note">None.</p>')
    out.append("</div></div>")
    out.append(
        '<h3>Documents</h3><p><label class="filter"><input type="checkbox" id="only-problems"> '
        "hide clean documents</label></p>"
        "<table><tr><th>document</th><th>verdict</th><th>encoding</th>"
        '<th class="n">edits</th><th class="n">findings</th></tr>'
    )
    for number, (name, _, response) in enumerate(documents, start=1):
        verdict = verdict_name(response)
        out.append(
            f'<tr><td><a href="#doc-{number}">{_visible_html(name)}</a></td>'
            f'<td><span class="verdict v-{verdict}">{verdict}</span></td>'
            f"<td>{_visible_html(response.encoding.name)}</td>"
            f'<td class="n">{len(response.edits)}</td>'
            f'<td class="n">{len(response.findings)}</td></tr>'
        )
    out.append("</table></section>")
    return "\n".join(out)


def render_report(
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
    *,
    title: str = "textmend report",
) -> str:
    """One self-contained HTML page reviewing repaired documents.

    Each document is `(name, content, response)`: a name to show (a path, say), the bytes
    that were sent and the server's response. The page has a summary (documents clean,
    repaired, suspect and unreadable; edits and findings per category; encodings seen) and
    then, per document, its verdict and encoding and the original and cleaned text side by
    side, each edit highlighted in both columns and each finding outlined, with the reason,
    confidence and suggestion on hover.

    Only excerpts around edits and findings are rendered, within per-document limits
    (`CONTEXT_LINES`, `CONTEXT_CHARS`, `MAX_MARKS`, `MAX_RENDERED_CHARS`, `MAX_SPAN_CHARS`);
    what is left out is replaced by "N unchanged lines" markers and a note, so that a 10 MB
    document still gives a page a browser can open.
    """
    head = (
        "<!DOCTYPE html>\n"
        '<html lang="en" dir="ltr">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n'
        f"<title>{html.escape(visible_text(title))}</title>\n"
        f"<style>{_CSS}\n{_category_css()}</style>\n</head>\n<body>\n"
        f"<h1>{_visible_html(title)}</h1>\n"
    )
    body = [_summary_html(documents)]
    body += [
        _document_html(number, name, content, response)
        for number, (name, content, response) in enumerate(documents, start=1)
    ]
    return head + "\n".join(body) + f"\n<script>{_SCRIPT}</script>\n</body>\n</html>\n"


def write_report(
    path: str | os.PathLike[str],
    documents: Sequence[tuple[str, bytes, textmend_pb2.RepairResponse]],
    *,
    title: str = "textmend report",
) -> None:
    """Render the report (see `render_report`) and write it to path as UTF-8."""
    page = render_report(documents, title=title)
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(page)


def run_report(
    paths: Sequence[str],
    client: TextMendClient,
    output: str | os.PathLike[str],
    *,
    title: str = "textmend report",
    policy: Mapping[str, str] | None = None,
    content_type: str = "",
    err: IO[str] | None = None,
) -> int:
    """Repair the files under paths and write the HTML report to output; the exit code.

    Files the server refuses (binary ones) are left out with a warning on err. Returns 0 when
    the report was written, 2 when a file could not be read (the report is still written with
    the others) or the report could not be written, 3 when the server failed.
    """
    err = err or sys.stderr
    documents: list[tuple[str, bytes, textmend_pb2.RepairResponse]] = []
    worst = EXIT_OK
    for outcome in repair_files(paths, client, policy=policy, content_type=content_type):
        worst = max(worst, report_outcome(outcome, err))
        if outcome.response is not None:
            documents.append((outcome.path, outcome.content, outcome.response))
    if worst == EXIT_SERVER:
        return worst
    try:
        write_report(output, documents, title=title)
    except OSError as exc:
        warn(err, f"{os.fspath(output)}: cannot write the report: {exc.strerror or exc}")
        return EXIT_IO
    return worst
