"""Character classes of the CJK scripts, as compiled patterns and cheap predicates.

Everything here is built once at import; the detectors use these patterns as the pre-check
that makes clean text cost almost nothing.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable


def ranges_class(blocks: Iterable[tuple[int, int]]) -> str:
    """The body of a regex character class matching the code point ranges blocks.

    >>> ranges_class(((0x41, 0x43), (0x61, 0x61)))
    'A-Ca-a'
    """
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in blocks)


# The Han blocks as code point pairs (Extension A, the unified ideographs, compatibility
# ideographs, the supplementary ideographic planes), and as a regex character class.
HAN_BLOCKS = ((0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xF900, 0xFAFF), (0x20000, 0x3134F))
HAN_RANGES = ranges_class(HAN_BLOCKS)
KANA_RANGES = "\u3041-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f"
BOPOMOFO_RANGES = "\u3100-\u312f\u31a0-\u31bf"
HANGUL_RANGES = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"
# CJK symbols and punctuation, full-width forms, and the marks CJK text uses from elsewhere.
CJK_PUNCT_RANGES = "\u3000-\u303f\uff01-\uff65\u2018\u2019\u201c\u201d\u2026\u2014\u00b7\u30fb"

HAN = f"[{HAN_RANGES}]"
CJK_ANY = f"[{HAN_RANGES}{KANA_RANGES}{BOPOMOFO_RANGES}{HANGUL_RANGES}]"

# Letters pinyin is written with: tone marks, ü, and the v and digits of the numbered style.
PINYIN_LETTERS = "a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜüêńňǹḿ"

_HAN_RE = re.compile(HAN)
_CJK_RE = re.compile(CJK_ANY)


def is_han(ch: str) -> bool:
    """Whether ch is a Han character (any CJK ideograph block).

    >>> is_han("字"), is_han("か"), is_han("A")
    (True, False, False)
    """
    return _HAN_RE.match(ch) is not None


def is_cjk(ch: str) -> bool:
    """Whether ch belongs to a CJK script: Han, kana, bopomofo or hangul."""
    return _CJK_RE.match(ch) is not None


def has_cjk(text: str) -> bool:
    """Whether text holds any CJK script character at all (the cheapest gate)."""
    return _CJK_RE.search(text) is not None


# The Latin script's blocks beyond ASCII: Latin-1 Supplement to Latin Extended-B (up to
# U+024F) and Latin Extended Additional (U+1E00–U+1EFF, Vietnamese).
LATIN_END = 0x0250
LATIN_EXTENDED_ADDITIONAL = 0x1E00
GREEK_EXTENDED = 0x1F00


def char_class(ch: str) -> str:
    """A coarse class used by the character model: han, kana, hangul, bopomofo, punct, latin,
    digit, space, pua, or other.

    >>> [char_class(c) for c in "字か한ㄘ。AQ1 "]
    ['han', 'kana', 'hangul', 'bopomofo', 'punct', 'latin', 'latin', 'digit', 'space']
    """
    o = ord(ch)
    if o < 0x80:
        if ch.isalpha():
            return "latin"
        if ch.isdigit():
            return "digit"
        if ch.isspace():
            return "space"
        return "punct"
    if _HAN_RE.match(ch):
        return "han"
    if (0x3041 <= o <= 0x30FF and o != 0x30FB) or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "kana"
    if 0xAC00 <= o <= 0xD7A3 or 0x1100 <= o <= 0x11FF or 0x3130 <= o <= 0x318F:
        return "hangul"
    if 0x3100 <= o <= 0x312F or 0x31A0 <= o <= 0x31BF:
        return "bopomofo"
    if 0xE000 <= o <= 0xF8FF:
        return "pua"
    cat = unicodedata.category(ch)
    if cat[0] == "P" or cat in ("Sm", "Sc", "Sk", "So"):
        return "punct"
    if cat[0] == "Z":
        return "space"
    if cat[0] == "L":
        # Latin letters with accents read as Latin; Greek and Cyrillic, which the double-byte
        # tables also hold, are another alphabet in CJK text, not a continuation of `?s`.
        return (
            "latin" if o < LATIN_END or LATIN_EXTENDED_ADDITIONAL <= o < GREEK_EXTENDED else "other"
        )
    if cat[0] == "N":
        return "digit"
    return "other"


def fold_width(text: str) -> str:
    """Fold full-width ASCII forms (U+FF01–FF5E) to ASCII, as a later clean-up step does.

    >>> fold_width("！？（），：Ａ")
    '!?(),:A'
    """
    return "".join(chr(ord(c) - 0xFEE0) if 0xFF01 <= ord(c) <= 0xFF5E else c for c in text)


# A text is Japanese when more than this share of its CJK letters is kana, Korean when more
# than it is hangul: Japanese prose is about half kana (56% of the CJK letters of the
# benchmark's Japanese corpus), Chinese has none, and Korean writes little Han. A
# first-version choice (18da600), not a measurement.
SCRIPT_SHARE = 0.2


def text_language(text: str) -> str | None:
    """The CJK language text is mostly written in ('zh', 'ja', 'ko'), or None if it has no
    CJK characters.

    >>> text_language("這是中文。"), text_language("これは日本語です。"), text_language("한국어")
    ('zh', 'ja', 'ko')
    >>> text_language("plain English") is None
    True
    """
    counts = {"han": 0, "kana": 0, "hangul": 0}
    for ch in text:
        if ch >= "\u1100":
            cls = char_class(ch)
            if cls in counts:
                counts[cls] += 1
    total = sum(counts.values())
    if total == 0:
        return None
    if counts["hangul"] > SCRIPT_SHARE * total:
        return "ko"
    if counts["kana"] > SCRIPT_SHARE * total and counts["kana"] >= 2:
        return "ja"
    if counts["han"] == 0:
        return "ja" if counts["kana"] else "ko"
    return "zh"
