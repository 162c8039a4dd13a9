"""The side-by-side view of one document in the HTML report (`textmend_client.report`): which
stretches of the text to show around its edits and findings (`select_excerpts`), and each
column's HTML with every edit and finding placed in it (`Column`).

Everything taken from the document is HTML-escaped, and invisible characters are drawn as
badges naming them (`visible_html`, by the rule of `textmend_client.visible`).
"""

from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from textmend.v1 import textmend_pb2
from textmend_client.responses import LineIndex, category_name
from textmend_client.visible import code_point, mark_invisible, visible_text

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
#: Excerpts at most this many characters apart are joined: the "⋯ N unchanged characters ⋯"
#: marker that would stand between them is about as long as the text it would hide.
JOIN_GAP_CHARS = 16

# --- text helpers ----------------------------------------------------------------------------


def _char_name(ch: str) -> str:
    """`U+202E RIGHT-TO-LEFT OVERRIDE`, or just the code point when it has no name."""
    name = unicodedata.name(ch, "")
    return f"{code_point(ch)} {name}" if name else code_point(ch)


def _badge(ch: str) -> str:
    """An invisible character as a badge: `⟨U+202E⟩`, its name on hover."""
    return f'<span class="inv" title="{html.escape(_char_name(ch))}">⟨{code_point(ch)}⟩</span>'


def visible_html(text: str) -> str:
    r"""HTML-escaped text with invisible characters as badges naming them.

    >>> visible_html("a<\u202e")
    'a&lt;<span class="inv" title="U+202E RIGHT-TO-LEFT OVERRIDE">⟨U+202E⟩</span>'
    """
    return mark_invisible(text, _badge, html.escape)


def quote(text: str, limit: int = MAX_TITLE_CHARS) -> str:
    """A short, quoted, visible rendering of a span, for tooltips: invisible characters as
    `⟨U+XXXX⟩` marks, line feeds as `⏎`, cut at limit characters."""
    shown = visible_text(text).replace("\n", "⏎")
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"‘{shown}’"


# --- marks: edits and findings placed in one column ------------------------------------------


@dataclass(frozen=True)
class Mark:
    """An edit or finding at [start, end) of one column's text."""

    start: int
    end: int
    key: str  # shared by the same edit or finding in both columns, for the hover link
    category: str
    source: textmend_pb2.Edit  # the edit or finding, for the tooltip, made only when shown
    finding: bool

    @property
    def title(self) -> str:
        """The tooltip: category, reason, confidence and the change or suggestion."""
        return _finding_title(self.source) if self.finding else _edit_title(self.source)


def _edit_title(edit: textmend_pb2.Edit) -> str:
    return (
        f"{category_name(edit.category)}: {edit.reason} (confidence {edit.confidence:.2f})\n"
        f"{quote(edit.original)} → {quote(edit.replacement)}"
    )


def _finding_title(finding: textmend_pb2.Edit) -> str:
    title = (
        f"{category_name(finding.category)} (finding, left unchanged): {finding.reason} "
        f"(confidence {finding.confidence:.2f})"
    )
    if finding.suggestion:
        title += f"\nsuggestion: {quote(finding.suggestion)}"
    return title


def _snap(start: int, end: int, edits: Sequence[Mark], starts: Sequence[int]) -> tuple[int, int]:
    """Widen [start, end) so that neither end falls strictly inside an edit."""
    i = bisect.bisect_right(starts, start) - 1
    if i >= 0 and edits[i].start < start < edits[i].end:
        start = edits[i].start
    j = bisect.bisect_left(starts, end) - 1
    if j >= 0 and edits[j].start < end < edits[j].end:
        end = edits[j].end
    return start, end


def _snap_excerpt(
    start: int, end: int, edits: Sequence[Mark], starts: Sequence[int]
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


class Column:
    """One side of the comparison: its text, lines, edits and findings."""

    def __init__(self, text: str, edits: list[Mark], findings: list[Mark], tag: str) -> None:
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
        inserts: dict[int, list[Mark]] = {}
        for mark in edits:
            if mark.end == mark.start:
                inserts.setdefault(mark.start, []).append(mark)
        findings: list[Mark] = []
        first = bisect.bisect_left(self.finding_reach, a)
        last = bisect.bisect_right(self.finding_starts, b)
        for mark in self.findings[first:last]:
            if mark.start > b or (mark.end < a) or (mark.end == a and mark.start < a):
                continue
            start, end = _snap(max(mark.start, a), min(mark.end, b), self.edits, self.edit_starts)
            if mark.start == mark.end or start < end:
                findings.append(
                    Mark(start, end, mark.key, mark.category, mark.source, True)
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
        opened: tuple[Mark, ...] = ()
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
                out.append(visible_html(text[position:end]))
            position = end
        out.append("</span>" * len(opened))
        for mark in inserts.get(b, ()):
            out.append(self._edit_html(mark, ""))
        return "".join(out)

    def _edit_html(self, mark: Mark, body: str) -> str:
        empty = "" if body else " empty"
        return (
            f'<{self.tag} class="edit c-{mark.category}{empty}" data-k="{mark.key}" '
            f'title="{html.escape(mark.title)}">{body}</{self.tag}>'
        )


def _line_marker(number: int, *, continued: bool = False) -> str:
    extra = " cont" if continued else ""
    return f'<span class="ln{extra}" data-n="{number}"></span>'


def _finding_open(mark: Mark) -> str:
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
        out.append(visible_html(pieces[0]))
        for piece in pieces[1:]:
            line += 1
            out.append("\n" + _line_marker(line) + visible_html(piece))
    return "".join(out), line


# --- choosing what to show -------------------------------------------------------------------


@dataclass(frozen=True)
class Excerpts:
    """The stretches of the original to render, and what was left out for size."""

    ranges: list[tuple[int, int]]
    hidden_edits: int
    hidden_findings: int


def select_excerpts(
    lines: LineIndex,
    edits: Sequence[textmend_pb2.Edit],
    findings: Sequence[textmend_pb2.Edit],
    edit_marks: Sequence[Mark],
    edit_starts: Sequence[int],
) -> Excerpts:
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
        if ranges and lo <= ranges[-1][1] + JOIN_GAP_CHARS:
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
    return Excerpts(ranges, hidden_edits, hidden_findings)


def to_cleaned(edits: Sequence[textmend_pb2.Edit], ends: Sequence[int], offset: int) -> int:
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


def gap_html(text: str, start: int, end: int) -> str:
    """The marker for an unchanged stretch left out of the page, or nothing when empty."""
    if end <= start:
        return ""
    lines = text.count("\n", start, end)
    size = plural(lines, "unchanged line") if lines else plural(end - start, "unchanged character")
    return f'<div class="gap">⋯ {size} ⋯</div>'


def plural(count: int, word: str) -> str:
    """`1 edit`, `2 edits`.

    >>> plural(1, "edit"), plural(2, "edit")
    ('1 edit', '2 edits')
    """
    return f"{count} {word}{'s' * (count != 1)}"
