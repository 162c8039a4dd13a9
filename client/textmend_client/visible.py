r"""What counts as an invisible character, and how every command of the client shows one.

A terminal, a log and a browser all hide or obey some characters: controls, zero-width and
bidi format characters, line and paragraph separators, unassigned, private-use and surrogate
code points, and letters that draw as nothing. The diff (`repair --format diff`), `check`'s
messages and the HTML report show them, never render them, by the one rule here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

# Letters that draw as nothing at all (Hangul fillers, Braille blank): invisible, though not
# format characters.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
# Unicode general categories that draw nothing or change how their neighbours draw.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"})


# Everything outside printable ASCII, tab and line feed: only these need a closer look.
CANDIDATES = re.compile(r"[^\t\n\x20-\x7e]")


def is_invisible(ch: str) -> bool:
    r"""Whether a character draws as nothing, or changes how its neighbours draw.

    Controls (but not tab and line feed), format characters (zero-width spaces and joiners,
    bidi overrides and isolates, soft hyphens, tags), line and paragraph separators,
    unassigned, private-use and surrogate code points, and blank letters such as U+3164.

    >>> [is_invisible(c) for c in "a\t\n\r\u200b\u202e\ue000\u3164"]
    [False, False, False, True, True, True, True, True]
    """
    if ch in "\t\n":
        return False
    return ch in _BLANK_LETTERS or unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def escape(ch: str) -> str:
    r"""A Python-style escape for one character: `\u200b`, `\U000e0001`.

    >>> print(escape("\u202e"), escape("\U000e0001"))
    \u202e \U000e0001
    """
    return f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}"


def escaped(text: str, *, breaks: bool = False) -> str:
    r"""Text with its invisible characters as escapes; with `breaks`, line feeds and tabs too
    (for a one-line message). Tabs and line feeds otherwise stay as they are.

    >>> print(escaped("zero\u200bwidth, bell\x07"), escaped("a\tb\n", breaks=True))
    zero\u200bwidth, bell\u0007 a\tb\n
    """
    return mark_invisible(text, escape, _escape_breaks if breaks else _as_is)


def _escape_breaks(text: str) -> str:
    return text.replace("\t", "\\t").replace("\n", "\\n")


def _as_is(text: str) -> str:
    return text


def mark_invisible(
    text: str, mark: Callable[[str], str], plain: Callable[[str], str] = _as_is
) -> str:
    r"""Text with each invisible character replaced by `mark(ch)` and each stretch between
    them by `plain(stretch)`: the one walk over a text that every rendering here shares (an
    HTML page passes `html.escape` as `plain`).

    >>> mark_invisible("a\u200bb<", lambda ch: "[" + code_point(ch) + "]", str.upper)
    'A[U+200B]B<'
    """
    out: list[str] = []
    last = 0
    for match in CANDIDATES.finditer(text):
        ch = match[0]
        if not is_invisible(ch):
            continue
        out.append(plain(text[last : match.start()]))
        out.append(mark(ch))
        last = match.end()
    out.append(plain(text[last:]))
    return "".join(out)


def code_point(ch: str) -> str:
    """`U+202E`."""
    return f"U+{ord(ch):04X}"


def visible_text(text: str) -> str:
    """Text with every invisible character written as a `⟨U+XXXX⟩` mark, as the report shows it.

    >>> visible_text("abc\u202egnp.exe")
    'abc⟨U+202E⟩gnp.exe'
    """
    return mark_invisible(text, lambda ch: f"⟨{code_point(ch)}⟩")
