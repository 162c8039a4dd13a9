"""A unified diff of the original against the cleaned text, built from the edits.

Built from the edits rather than by comparing the texts: the work grows with the number of
edits and the lines they touch, not with the document, and the diff shows exactly the changes
the edits describe.
"""

from __future__ import annotations

import unicodedata
from bisect import bisect_right
from collections.abc import Sequence

from textmend_server.edits import Edit

_NO_NEWLINE = "\\ No newline at end of file\n"

# C escapes git uses in quoted paths; any other character that needs quoting is written as the
# octal escapes of its UTF-8 bytes, as git does.
_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\v": "\\v",
    "\f": "\\f",
    "\r": "\\r",
}
_ESCAPES |= {'"': '\\"', "\\": "\\\\"}
# Unicode categories that can forge or hide a line of the header: controls, line and paragraph
# separators, format characters (bidi overrides reorder what a terminal shows), unassigned,
# surrogates and private use.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})


def _needs_escape(ch: str) -> bool:
    return ch in _ESCAPES or unicodedata.category(ch) in _UNSAFE_CATEGORIES


def quote_label(label: str) -> str:
    r"""label as a diff header prints it: as it is, or in double quotes with C escapes when it
    holds a character that could forge a line or hide text (git's quoting of paths).

    A caller's id becomes the label, so without this an id holding a newline could add lines
    to the header (issue 16).

    >>> quote_label("a/doc-1.txt"), quote_label("a/café 2")
    ('a/doc-1.txt', 'a/café 2')
    >>> print(quote_label("a/doc\n+++ b/forged"))
    "a/doc\n+++ b/forged"
    >>> print(quote_label('a/x"y\u202ez'))
    "a/x\"y\342\200\256z"
    """
    if not any(_needs_escape(ch) for ch in label):
        return label
    parts = []
    for ch in label:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif unicodedata.category(ch) in _UNSAFE_CATEGORIES:
            raw = ch.encode("utf-8", "surrogatepass")
            parts.append("".join(f"\\{byte:03o}" for byte in raw))
        else:
            parts.append(ch)
    return '"' + "".join(parts) + '"'


def _line_starts(text: str) -> list[int]:
    starts = [0]
    find = text.find
    pos = find("\n")
    while pos != -1:
        starts.append(pos + 1)
        pos = find("\n", pos + 1)
    return starts


def _count_lines(text: str) -> int:
    return text.count("\n") + (1 if text and not text.endswith("\n") else 0)


def _line_of(starts: Sequence[int], pos: int) -> int:
    return bisect_right(starts, pos) - 1


def _lines(text: str, starts: Sequence[int], first: int, last: int) -> list[str]:
    """Lines first..last-1 of text, each with its newline (if any)."""
    last = min(last, len(starts))
    return [
        text[starts[k] : starts[k + 1] if k + 1 < len(starts) else len(text)]
        for k in range(first, last)
    ]


def unified_diff(
    original: str, cleaned: str, edits: Sequence[Edit], label: str = "document", context: int = 3
) -> str:
    """Unified diff (as `diff -u` prints it) of original against cleaned, hunks from edits.

    The headers are `a/<label>` and `b/<label>`, quoted by `quote_label` when label holds
    characters that could forge a header line.

    >>> from textmend_server.policy import Category
    >>> e = Edit(Category.MOJIBAKE, 9, 11, 9, 10, "Ã©", "é", "utf-8 read as latin-1", 0.9)
    >>> print(unified_diff("line one\\ncafÃ©\\n", "line one\\ncafé\\n", [e]), end="")
    --- a/document
    +++ b/document
    @@ -1,2 +1,2 @@
     line one
    -cafÃ©
    +café
    """
    if not edits:
        return ""
    o_starts, c_starts = _line_starts(original), _line_starts(cleaned)
    n_orig, n_clean = _count_lines(original), _count_lines(cleaned)
    # Each edit rewrites whole original lines [a1, a2) into cleaned lines [b1, b2): from the
    # line its start is on through the line its end is on. Touching rewrites merge, so a run
    # of changed lines prints as its removed lines, then its added lines, as diff -u does.
    blocks: list[list[int]] = []
    for e in edits:
        a1 = min(_line_of(o_starts, e.original_start), n_orig)
        a2 = min(_line_of(o_starts, e.original_end) + 1, n_orig)
        b1 = min(_line_of(c_starts, e.cleaned_start), n_clean)
        b2 = min(_line_of(c_starts, e.cleaned_end) + 1, n_clean)
        if blocks and (a1 <= blocks[-1][1] or b1 <= blocks[-1][3]):
            blocks[-1][1] = max(blocks[-1][1], a2)
            blocks[-1][3] = max(blocks[-1][3], b2)
        else:
            blocks.append([a1, a2, b1, b2])
    # Edits that cancel out (a line removed and put back) leave nothing to show.
    blocks = [
        b
        for b in blocks
        if _lines(original, o_starts, b[0], b[1]) != _lines(cleaned, c_starts, b[2], b[3])
    ]
    if not blocks:
        return ""
    # Group blocks whose context would touch into hunks.
    hunks: list[list[list[int]]] = []
    for block in blocks:
        if hunks and block[0] - hunks[-1][-1][1] <= 2 * context:
            hunks[-1].append(block)
        else:
            hunks.append([block])
    out = [f"--- {quote_label('a/' + label)}\n", f"+++ {quote_label('b/' + label)}\n"]
    for hunk in hunks:
        a_lo = max(0, hunk[0][0] - context)
        offset = hunk[0][2] - hunk[0][0]  # cleaned line = original line + offset before a block
        a_hi = min(n_orig, hunk[-1][1] + context)
        b_lo = a_lo + offset
        b_hi = a_hi + (hunk[-1][3] - hunk[-1][1])
        body: list[str] = []
        pos = a_lo
        for a1, a2, b1, b2 in hunk:
            body += [" " + line for line in _lines(original, o_starts, pos, a1)]
            body += ["-" + line for line in _lines(original, o_starts, a1, a2)]
            body += ["+" + line for line in _lines(cleaned, c_starts, b1, b2)]
            pos = a2
        body += [" " + line for line in _lines(original, o_starts, pos, a_hi)]
        out.append(f"@@ -{_range(a_lo, a_hi - a_lo)} +{_range(b_lo, b_hi - b_lo)} @@\n")
        out += [line if line.endswith("\n") else line + "\n" + _NO_NEWLINE for line in body]
    return "".join(out)


def _range(start: int, length: int) -> str:
    """Hunk range as diff prints it: 1-based start, length omitted when 1."""
    first = start + 1 if length else start
    return f"{first}" if length == 1 else f"{first},{length}"
