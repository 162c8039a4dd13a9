"""How unlike natural text a decoding reads (`implausibility`): the anomalies a wrong codec
leaves in the words that hold non-ASCII characters, the only words that differ between
candidate decodings of the same bytes.

Counts words mixing scripts (what a wrong single-byte codec makes), C1 controls and private-use
characters, symbols wedged inside words, capitals breaking lower-case words, runs of accented
letters, box drawing in prose, and ftfy's mojibake badness. Detection ranks readings with it;
decoding uses it to weigh a declared charset against detection's best reading.
"""

from __future__ import annotations

import re

from ftfy.badness import badness

from textmend_server.cjkreadings import (
    BMP_HAN_BLOCKS,
    COMPATIBILITY_IDEOGRAPHS,
    HANGUL_SYLLABLES,
    KANA_BLOCK,
)

# The characters of non-ASCII words each reading is scored on: a few hundred words, enough to
# tell readings apart, so that scoring costs the same on any size of document. Set by hand with
# the scoring (commit 6ed88e7).
SCORED_CHARS = 1200
# How far a word reaches, in characters, on either side of its non-ASCII run (bounded, so long
# ASCII stretches without spaces cost nothing). Set by hand with the scoring (commit 6ed88e7).
WORD_REACH = 24
# Anomalies are counted per 100 non-ASCII characters, over at least MIN_WIDE of them, so that
# one anomaly in a two-letter text does not read as fifty. Set by hand with the scoring.
MIN_WIDE = 10
# What each anomaly weighs (see `anomalies`): a word mixing scripts and a character text almost
# never holds are the surest signs of a wrong codec; a wedged symbol, a case break and a run of
# accents are each one sign; box drawing is half one, as DOS tables hold it for real. Set by
# hand with the scoring (commits 6ed88e7, 2c48471); the bench figures were measured with them.
MIXED_SCRIPT_WEIGHT = 2.0
ODD_CHAR_WEIGHT = 2.0
BOX_WEIGHT = 0.5

# Words holding at least one non-ASCII character: all that can differ between readings. Found
# from their non-ASCII runs, then widened to the word around them (by at most WORD_REACH).
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_WORD_HEAD = re.compile(rf"[^\s<>\"'=&;/]{{0,{WORD_REACH}}}\Z")
_WORD_TAIL = re.compile(rf"[^\s<>\"'=&;/\x80-\U0010ffff]{{0,{WORD_REACH}}}")
_LETTER_WORD = re.compile(r"[^\W\d_]{2,}")

# Letters by script, for telling words that mix scripts: Latin (ASCII letters and Latin-1 to
# Latin Extended-B), Cyrillic, Greek, Hebrew and Arabic as one, Thai, and the CJK scripts as
# one (kana, the unified Han blocks, hangul syllables; see `cjkreadings`).
_SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "L": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F)),
    "C": ((0x400, 0x4FF),),
    "G": ((0x370, 0x3FF),),
    "H": ((0x590, 0x6FF),),
    "T": ((0xE00, 0xE7F),),
    "J": (
        KANA_BLOCK,
        *(b for b in BMP_HAN_BLOCKS if b != COMPATIBILITY_IDEOGRAPHS),
        HANGUL_SYLLABLES,
    ),
}
# × and ÷ sit among the Latin-1 letters but are no letters: they belong to no script.
_NOT_LETTERS = (0xD7, 0xF7)


def _build_script_table() -> dict[int, str | None]:
    """Letter → script initial (`_SCRIPTS`), for `str.translate`; × and ÷ map to nothing."""
    table: dict[int, str | None] = {}
    for script, ranges in _SCRIPTS.items():
        for lo, hi in ranges:
            for code in range(lo, hi + 1):
                table[code] = script
    for code in _NOT_LETTERS:
        table[code] = None
    return table


_SCRIPT_OF = _build_script_table()
# Characters text almost never holds: C1 controls, private use, the replacement character.
_ODD = re.compile(r"[\x80-\x9f\ue000-\uf8ff\ufffd]")
# A non-ASCII symbol, digit or mark wedged between two letters: `Za¿ó³æ`, `ÕfËû`.
_WEDGED = re.compile(
    r"(?<=[^\W\d_])[\u00a1-\u00bf\u00d7\u00f7\u201a-\u2122\u2500-\u25ff\u2190-\u21ff"
    r"\u2200-\u22ff\u0384-\u0385\u02c6-\u02dd](?=[^\W\d_])"
)


def case_break(followed: bool = True) -> re.Pattern[str]:
    """A non-ASCII capital right after a lower-case letter (`nobodyŤ`, `пРиВЕТ`), and, when
    followed, before one too (`BlanchardÕs`): a quote or a letter of another codec read with
    the wrong one. ASCII capitals are left alone (`McDonald`, `iPhone`).

    >>> bool(case_break().search("BlanchardÕs")), bool(case_break().search("nobodyŤ"))
    (True, False)
    >>> bool(case_break(followed=False).search("nobodyŤ"))
    True
    """
    letters = [chr(c) for c in range(0xC0, 0x530)]
    upper = "".join(c for c in letters if c.isupper())
    lower = "a-z" + "".join(c for c in letters if c.islower())
    after = f"(?=[{lower}])" if followed else ""
    return re.compile(f"(?<=[{lower}])[{re.escape(upper)}]{after}")


_CASE_BREAK = case_break()
# Three or more accented Latin letters in a row, which no Latin-script language writes much.
_ACCENT_RUN = re.compile(r"[\u00c0-\u024f]{3,}")
# Box drawing and block elements inside running text: DOS code pages read with the wrong one.
_BOX = re.compile(r"[\u2500-\u259f\u2320-\u2321\u2310]")


def non_ascii(text: str) -> int:
    """How many characters of text are not ASCII (at C speed).

    >>> non_ascii("café → tea")
    2
    """
    return len(text) - len(text.encode("ascii", "ignore"))


def foreign_words(text: str, limit: int = SCORED_CHARS) -> str:
    """The words of text holding non-ASCII characters, space-joined, at most limit chars.

    >>> foreign_words("a café in Köln, twice: café")
    'café Köln, café'
    """
    out = []
    size = 0
    end = 0
    for run in _NON_ASCII_RUN.finditer(text):
        start, stop = run.span()
        if start < end:
            continue
        head = _WORD_HEAD.search(text, max(end, start - WORD_REACH), start)
        begin = head.start() if head else start
        tail = _WORD_TAIL.match(text, stop)
        end = tail.end() if tail else stop
        nxt = _NON_ASCII_RUN.match(text, end)
        while nxt is not None:  # the word goes on after more ASCII letters
            tail = _WORD_TAIL.match(text, nxt.end())
            end = tail.end() if tail and tail.end() > nxt.end() else nxt.end()
            nxt = _NON_ASCII_RUN.match(text, end)
        out.append(text[begin:end])
        size += end - begin + 1
        if size >= limit:
            break
    return " ".join(out)


def implausibility(text: str) -> float:
    """How unlike natural text a decoding reads: anomalies per 100 non-ASCII characters of the
    words that hold them (see the module's docstring).

    >>> implausibility("Café crème") < implausibility("Cafй crиme")
    True
    >>> implausibility("Daniel Blanchard’s Trackpad") < implausibility("Daniel BlanchardÕs")
    True
    """
    return words_implausibility(foreign_words(text))


def words_implausibility(words: str) -> float:
    """`implausibility` of words already picked out by `foreign_words`; 0 when none is
    non-ASCII."""
    wide = non_ascii(words)
    if not wide:
        return 0.0
    return 100.0 * anomalies(words) / max(wide, MIN_WIDE)


def anomalies(words: str) -> float:
    """The weighted count of anomalies in words (see `implausibility`)."""
    mixed = 0
    for word in _LETTER_WORD.findall(words):
        if not word.isascii():
            mixed += len(set(word.translate(_SCRIPT_OF))) > 1
    count = MIXED_SCRIPT_WEIGHT * mixed
    count += ODD_CHAR_WEIGHT * len(_ODD.findall(words))
    count += len(_WEDGED.findall(words)) + len(_CASE_BREAK.findall(words))
    count += len(_ACCENT_RUN.findall(words)) + BOX_WEIGHT * len(_BOX.findall(words))
    return count + badness(words)
