"""The human view of a response, `textmend repair --format diff`: a unified diff with the
changed characters highlighted, a summary line, then one line per edit and finding.

Invisible characters are shown as escapes by the one rule of `textmend_client.visible`, in
the diff and in the spans quoted for each edit, so that a terminal neither hides nor obeys
them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from textmend.v1 import textmend_pb2
from textmend_client.responses import LineIndex, category_name, enum_label, source_name
from textmend_client.visible import escaped

#: Characters a quoted span takes at most in the list of edits, quotes aside; a longer one
#: ends in `…`, so that a line per edit stays short enough to read.
SPAN_QUOTE_CHARS = 40
#: Widest the column of quoted changes is padded to, in characters, so that one long change
#: does not push every reason off the screen.
CHANGE_COLUMN_CHARS = 40


@dataclass(frozen=True)
class _Palette:
    """ANSI escapes, or empty strings when colour is off."""

    on: bool

    def __call__(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.on and text else text


def _show(text: str, limit: int = SPAN_QUOTE_CHARS) -> str:
    r"""A short, quoted, visible rendering of a span on one line: invisible characters as
    \u escapes, tabs and line feeds as \t and \n.

    >>> print(_show("a\u200bb\n"), _show("x" * 50)[-3:])
    'a\u200bb\n' x…'
    """
    shown = escaped(text, breaks=True)
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return f"'{shown}'"


def _original_text(content: bytes, response: textmend_pb2.RepairResponse) -> str | None:
    """Re-decode the content as the server did, to turn offsets into lines and columns.

    Returns None when the result does not match the server's length (a fallback decode, say).
    """
    try:
        text = content.decode(response.encoding.name or "utf-8", errors="replace")
    except LookupError:
        return None
    if len(text) != response.original_length and text.startswith("\ufeff"):
        text = text[1:]
    return text if len(text) == response.original_length else None


def _position(lines: LineIndex | None, offset: int) -> str:
    """`line:column` (1-based) of a code point offset, or the offset when the original text
    is unknown."""
    return lines.label(offset) if lines is not None else str(offset)


def _highlight_pair(old: str, new: str, paint: _Palette) -> tuple[str, str]:
    """Mark the changed characters inside a removed/added line pair (reverse video)."""
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    old_out: list[str] = []
    new_out: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            old_out.append(paint("31", escaped(old[i1:i2])))
            new_out.append(paint("32", escaped(new[j1:j2])))
        else:
            old_out.append(paint("7;31", escaped(old[i1:i2])))
            new_out.append(paint("7;32", escaped(new[j1:j2])))
    return "".join(old_out), "".join(new_out)


def _color_diff(diff: str, paint: _Palette) -> list[str]:
    """Colour a unified diff; paired -/+ lines get their changed characters highlighted.

    Invisible characters are shown as escapes (see `textmend_client.visible`), coloured or not.
    """
    lines = diff.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith(("---", "+++")):
            out.append(paint("1", escaped(line)))
        elif line.startswith("@@"):
            out.append(paint("36", line))
        elif line.startswith("-"):
            removed = []
            while i < len(lines) and lines[i].startswith("-"):
                removed.append(lines[i][1:])
                i += 1
            added = []
            while i < len(lines) and lines[i].startswith("+") and not lines[i].startswith("+++"):
                added.append(lines[i][1:])
                i += 1
            if paint.on and len(removed) == len(added):
                pairs = [_highlight_pair(a, b, paint) for a, b in zip(removed, added, strict=True)]
                out += [paint("31", "-") + old for old, _ in pairs]
                out += [paint("32", "+") + new for _, new in pairs]
            else:
                out += [paint("31", "-" + escaped(text)) for text in removed]
                out += [paint("32", "+" + escaped(text)) for text in added]
            continue
        elif line.startswith("+"):
            out.append(paint("32", escaped(line)))
        else:
            out.append(escaped(line))
        i += 1
    return out


def render_diff(
    response: textmend_pb2.RepairResponse, content: bytes, *, color: bool = False
) -> str:
    """The human view: a unified diff, a summary line, then one line per edit and finding."""
    paint = _Palette(color)
    original = _original_text(content, response)
    lines = LineIndex(original) if original is not None else None
    out = _color_diff(response.diff, paint) if response.diff else []
    if response.diff:
        out.append("")
    encoding = response.encoding
    verdict = enum_label(textmend_pb2.Verdict, response.verdict, "VERDICT_")
    edits, findings = len(response.edits), len(response.findings)
    out.append(
        paint("1", verdict)
        + f" · {encoding.name or '?'} ({source_name(encoding)}, {encoding.confidence:.2f})"
        + f" · {edits} edit{'s' * (edits != 1)} · {findings} finding{'s' * (findings != 1)}"
    )
    rows = [("fixed", edit, edit.replacement) for edit in response.edits]
    rows += [("flagged", finding, finding.suggestion) for finding in response.findings]
    rows.sort(key=lambda row: (row[1].original_start, row[0]))
    cells = []
    for kind, edit, proposed in rows:
        # Spans read as first–last character, 1-based, like an editor's cursor position.
        span = _position(lines, edit.original_start)
        if edit.original_end > edit.original_start + 1:
            span += "–" + _position(lines, edit.original_end - 1)
        change = _show(edit.original)
        if kind == "fixed" or (proposed and proposed != edit.original):
            change += " → " + _show(proposed)
        cells.append((kind, category_name(edit.category, unknown="?"), span, change, edit))
    span_width = max((len(cell[2]) for cell in cells), default=0)
    change_width = min(CHANGE_COLUMN_CHARS, max((len(cell[3]) for cell in cells), default=0))
    for kind, category, span, change, edit in cells:
        label = paint("32" if kind == "fixed" else "33", f"{kind:<7}")
        out.append(
            f"  {label} {category:<16} {span:<{span_width}}  {change:<{change_width}}  "
            + paint("2", f"{edit.reason} ({edit.confidence:.2f})")
        )
    return "\n".join(out) + "\n"
