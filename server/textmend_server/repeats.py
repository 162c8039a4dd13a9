"""Ingestion damage that repeats a document's own text: a page stored twice, a block
appended again. Reported, never edited (which copy is the right one is the caller's call).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from textmend_server.capping import MAX_FINDING_TEXT
from textmend_server.edits import Proposal
from textmend_server.policy import Category

# A line with its line feed, or the last line without one.
_LINES = re.compile(r"[^\n]*\n|[^\n]+")


def _line_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each line of text, its line feed included, one at a time."""
    return (m.span() for m in _LINES.finditer(text))


# A line shorter than this is not a paragraph: headings, rules, list items and short
# sentences repeat on purpose. (The shortest repeated paragraph of the sample article is 40.)
_PARAGRAPH_MIN = 40
# The fewest visible characters a line of prose has: spaces are a quarter of a paragraph.
_PROSE_MIN_VISIBLE = _PARAGRAPH_MIN * 3 // 4
# A line (between line feeds) with at least that many characters: the only lines
# `may_repeat` looks at.
_LONG_LINE = re.compile(rf"(?m)^[^\n]{{{_PROSE_MIN_VISIBLE},}}")
# A repeated run shorter than this is a stock sentence (a licence's "WITHOUT ANY WARRANTY"
# line, a table row): ingestion damage repeats whole paragraphs. The sample article's shortest
# repeated run of paragraphs is 202 characters.
REPEAT_MIN_CHARS = 200
# A document is reported when its repeats are a real share of it and one of them is a block of
# several paragraphs: a page stored twice repeats a large part in a few long runs (the sample
# article: 26% of it, the longest run 1,995 characters), while clean documents repeat short
# records (the stanzas of a Debian copyright file: hundreds of runs of 200-400 characters) or a
# few per cent of themselves (a man page describing two fields alike). Measured on the real
# corpus (bench/real_corpus.py).
REPEAT_MIN_SHARE = 0.10
REPEAT_MIN_LONGEST = 500
# A run this long is reported whatever its share of a long document.
REPEAT_ALWAYS_CHARS = 4000
# Distinct lines `find_repeated_blocks` remembers at most. Each costs about 120 bytes
# (tracemalloc, a document of 1,000,000 numbered lines and a repeated paragraph: 119 MiB, 18
# times the document), so this holds the finder to about 30 MiB whatever a document's lines. A
# line past the limit that was not remembered counts as new, which ends a run; repeats of the
# lines remembered are still found. Chosen: 25 times the most distinct lines of a document
# of the real corpus (10,499, in files read up to 512 KB), about 20 MB of prose in lines of
# 80 characters; a 64 MiB document of short lines has millions.
REPEAT_MAX_LINES = 1 << 18
# Of a paragraph's visible characters, at least this share are letters, and at most this share
# the symbols code is made of: rows of `====`, tables of numbers and code are not prose. (The
# symbol share allows a parenthesis and a slash in a sentence of 40 characters.)
_PROSE_LETTERS = 0.6
_PROSE_MAX_SYMBOLS = 0.08
_CODE_SYMBOLS = frozenset("{}()[];=<>_*&|#\\/$@")
# Whitespace as `str.isspace` has it (the same class as `\s` in a str pattern).
_SPACE = re.compile(r"\s+")
# Tags are stripped before a line of HTML is judged: what counts is the text a reader sees, and
# a line that is mostly tags (navigation, a list of links) is markup, not a paragraph.
_TAG = re.compile(r"<[^<>]{0,300}>")
_MAX_TAG_SHARE = 0.5
# Lines of program source and of formats built from directives (POD's `=item`, roff's `.TP`):
# a document with this share of them is source, which repeats itself by construction
# (overloads, generated code, a table of contents). Only the first _SOURCE_LINES lines are read.
_SOURCE_LINE = re.compile(r"^\s*(?:[#=.*]|//|/\*)|[;{}(),\\]\s*$")
_SOURCE_SHARE = 0.3
_SOURCE_LINES = 400


def _is_prose(line: str) -> bool:
    """Whether a line reads as a paragraph of prose, not a rule, a table row or code.

    >>> _is_prose("This is a sentence (of prose) that is long enough to count.")
    True
    >>> _is_prose("_GLIBCXX_DEBUG_VERIFY(__pos <= this->size(), _M_message(x));")
    False
    """
    if "<" in line:
        stripped = _TAG.sub("", line)
        if len(stripped) < (1 - _MAX_TAG_SHARE) * len(line):
            return False
        line = stripped
    # A string, not a list of characters: a line of CJK as a list held an object per
    # character, about 80 times the line.
    visible = _SPACE.sub("", line)
    if len(visible) < _PROSE_MIN_VISIBLE:
        return False
    letters = sum(map(str.isalpha, visible))
    symbols = sum(visible.count(c) for c in _CODE_SYMBOLS)
    return (
        letters >= _PROSE_LETTERS * len(visible)
        and symbols <= _PROSE_MAX_SYMBOLS * len(visible)
        and len(set(visible)) >= 8
    )


def _is_source(text: str) -> bool:
    """Whether text reads as program source or a directive format rather than prose.

    >>> _is_source("int f(void);\\n#define X 1\\n/* a comment */\\nint g(int x) {\\n")
    True
    >>> _is_source("A sentence.\\nAnother one, longer.\\n")
    False
    """
    head = text[: _SOURCE_LINES * _PARAGRAPH_MIN * 4]  # enough for _SOURCE_LINES long lines
    lines = [line for line in head.splitlines()[:_SOURCE_LINES] if line.strip()]
    source = sum(1 for line in lines if _SOURCE_LINE.search(line))
    return bool(lines) and source >= _SOURCE_SHARE * len(lines)


def may_repeat(text: str) -> bool:
    """Whether `find_repeated_blocks` can find anything in text: False proves it finds
    nothing, since every run it reports starts with a line (stripped, not blank) that an
    earlier line already was and that reads as prose (`_is_prose`); rules, table rows and
    headings repeat in clean documents without starting one.

    Only lines long enough to read as prose are looked at, and each is remembered by its hash:
    this runs on every document, and remembering every line of a document of short lines (a
    list of numbers, a word list) took 15 times its size. Two lines with the same hash count as
    a repeat, so the answer can only err towards True, which runs the exact finder.

    >>> para = "A paragraph of prose, long enough to be read as one by the stage."
    >>> may_repeat("one\\n----\\n\\n\\none\\n----\\n"), may_repeat(f"{para}\\n\\n {para} \\n")
    (False, True)
    """
    seen: set[int] = set()
    judged: set[str] = set()  # lines, not hashes: a collision must not skip a prose line
    for match in _LONG_LINE.finditer(text):
        line = match.group().strip()
        if len(line) < _PROSE_MIN_VISIBLE:
            continue
        key = hash(line)
        if key in seen:
            if line not in judged:
                judged.add(line)
                if _is_prose(line):
                    return True
        else:
            seen.add(key)
    return False


def find_repeated_blocks(text: str) -> list[Proposal]:
    """Runs of paragraphs repeating earlier ones verbatim, where they look like a document
    stored twice rather than a text repeating itself.

    Reported only: repetition may be deliberate (a quoted passage, a refrain), so the
    suggestion is the text itself. Lines of `=`, table rows, code and stock sentences repeat
    in clean documents; only runs of prose paragraphs at least `REPEAT_MIN_CHARS` long count,
    and only when one is `REPEAT_MIN_LONGEST` and together they are `REPEAT_MIN_SHARE` of the
    text, or one is `REPEAT_ALWAYS_CHARS` long. Its memory is bounded (`REPEAT_MAX_LINES`).

    >>> line = "Paragraph {} of a page, long enough to count as prose.\\n"
    >>> page = "".join(line.format(n) for n in range(10))
    >>> [(p.start, p.end) == (len(page), 2 * len(page) - 1) for p in find_repeated_blocks(page * 2)]
    [True]
    >>> find_repeated_blocks(page + "A different ending.\\n" + page[:150])
    []
    >>> find_repeated_blocks("=" * 60 + "\\nTitle\\n" + "=" * 60 + "\\n")
    []
    """
    if _is_source(text):
        return []
    seen: dict[str, int] = {}
    runs: list[list[int]] = []  # [start, end, first line number of the earlier copy]
    run: list[int] = []
    for number, (start, end) in enumerate(_line_spans(text)):
        key = text[start:end].strip()
        if not key:
            continue
        if key not in seen:
            if len(seen) < REPEAT_MAX_LINES:
                seen[key] = number + 1
            if run:  # a line not seen before ends a run, however short
                runs.append(run)
                run = []
        elif run:
            run[1] = end  # repeated headings and rules inside a repeated run belong to it
        elif _is_prose(key):  # judged only for a repeat: most lines of a document are not
            run = [start, end, seen[key]]
    if run:
        runs.append(run)
    long_runs = [r for r in runs if r[1] - r[0] >= REPEAT_MIN_CHARS]
    longest = max((r[1] - r[0] for r in long_runs), default=0)
    repeated = sum(r[1] - r[0] for r in long_runs)
    stored_twice = longest >= REPEAT_MIN_LONGEST and repeated >= REPEAT_MIN_SHARE * len(text)
    if not stored_twice and longest < REPEAT_ALWAYS_CHARS:
        return []
    return [_repeat(text, r) for r in long_runs]


# How sure a repeat is damage once it passes the thresholds above: every document the real
# corpus reports holds long verbatim runs, but two of its three are copyright files quoting
# the same licence twice (bench/real_corpus.py), so short of certain. Hand-set.
REPEAT_CONFIDENCE = 0.9


def _repeat(text: str, run: list[int]) -> Proposal:
    start, end, first_line = run
    while end > start and text[end - 1] in "\r\n":
        end -= 1
    return Proposal(
        start,
        end,
        # The text, as far as a finding shows it: a run can be most of the document.
        text[start : min(end, start + MAX_FINDING_TEXT)],
        Category.REPEATED_BLOCK,
        f"repeats text first seen at line {first_line}",
        REPEAT_CONFIDENCE,
        flag_only=True,
    )
