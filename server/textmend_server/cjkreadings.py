"""CJK-specific checks of candidate readings: which characters count as CJK, how surprising a
reading's CJK characters are to the character model of their language, ISO-2022 shift codes
left in a text, and ISO-2022-JP recognised by its escapes.

The Han ranges are `cjk.scripts.HAN_BLOCKS`; kana and hangul are narrower here than in
`cjk.scripts` (see `KANA_BLOCK`, `HANGUL_SYLLABLES`).
"""

from __future__ import annotations

import re

from textmend_server.charsets import strict
from textmend_server.cjk.scripts import HAN_BLOCKS, ranges_class

# The Han blocks of the Basic Multilingual Plane: `cjk.scripts.HAN_BLOCKS` without the
# supplementary-plane ideographs, which detection has never counted (GB18030 and Big5-HKSCS
# decode a few byte sequences to them).
BMP_HAN_BLOCKS = tuple((lo, hi) for lo, hi in HAN_BLOCKS if hi <= 0xFFFF)
# The compatibility ideographs (U+F900–FAFF, one of `BMP_HAN_BLOCKS`): CJK characters, but left
# out of the script table of `plausibility` as that table was first set (EUC-KR decodes its
# duplicate hanja to them, so counting them there would change scores).
COMPATIBILITY_IDEOGRAPHS = (0xF900, 0xFAFF)
# Hiragana and katakana (U+3040–30FF). Narrower than `cjk.scripts.KANA_RANGES`, which also
# holds the phonetic extensions and the half-width forms: half-width katakana is what Latin
# bytes read as Shift_JIS turn into, and counting it as CJK would score such mojibake as text.
KANA_BLOCK = (0x3040, 0x30FF)
# The precomposed hangul syllables (U+AC00–D7A3). Narrower than `cjk.scripts.HANGUL_RANGES`,
# which also holds the jamo: lone jamo are what a wrong reading of EUC-KR bytes leaves.
HANGUL_SYLLABLES = (0xAC00, 0xD7A3)
# Every CJK character detection counts.
CJK_BLOCKS = (KANA_BLOCK, *BMP_HAN_BLOCKS, HANGUL_SYLLABLES)


_CJK = re.compile(f"[{ranges_class(CJK_BLOCKS)}]")
_CJK_RUN = re.compile(f"[{ranges_class(CJK_BLOCKS)}]+")
_KANA = re.compile(f"[{ranges_class((KANA_BLOCK,))}]")
_HANGUL = re.compile(f"[{ranges_class((HANGUL_SYLLABLES,))}]")

# Characters at the start of a reading in which `has_cjk` and `shift_codes` look: bounded, so a
# long document costs no more than a short one. Set by hand with the checks (commit 6ed88e7).
SCAN_CHARS = 20000
# CJK characters `cjk_surprise` scores at most, and how much text it scans to find them
# (SURPRISE_SCAN times as many characters). Set by hand with the checks (commit 6ed88e7).
SURPRISE_CHARS = 400
SURPRISE_SCAN = 20
# Which character model reads the characters: Korean when more than one in HANGUL_PART of them
# is hangul, else Japanese when more than one in KANA_PART is kana, else Chinese. Japanese
# writes kana in most sentences, Chinese none; set by hand with the checks (commit 6ed88e7).
HANGUL_PART = 3
KANA_PART = 10


def cjk_language(text: str) -> str:
    """Which character model reads text's CJK characters (`HANGUL_PART`, `KANA_PART`).

    >>> cjk_language("中文"), cjk_language("日本語のテキスト"), cjk_language("한국어 text")
    ('zh', 'ja', 'ko')
    """
    chars = "".join(_CJK.findall(text))
    if len(_HANGUL.findall(chars)) > len(chars) / HANGUL_PART:
        return "ko"
    return "ja" if len(_KANA.findall(chars)) > len(chars) / KANA_PART else "zh"


def cjk_languages(text: str) -> tuple[str, ...]:
    """The character models that may read text's CJK characters: `cjk_language`'s, and
    Japanese too when that is Chinese and the text holds no kana or hangul at all.

    Japanese written in kanji alone (an address list, a dictionary's headwords, a table of
    place names) is as much Japanese as Chinese, and the Chinese model prices Japanese forms
    such as 県 high: `岐阜県揖斐郡揖斐川町山手` in EUC-JP costs 136 nats under it, 91 under
    Japanese, while the same bytes read as GB18030 (`呆伸俯同儒反同儒李漠怀缄`) cost 124.

    >>> cjk_languages("東京都千代田区"), cjk_languages("日本語のテキスト"), cjk_languages("中文，")
    (('zh', 'ja'), ('ja',), ('zh', 'ja'))
    """
    lang = cjk_language(text)
    if lang == "zh" and not _KANA.search(text) and not _HANGUL.search(text):
        return ("zh", "ja")
    return (lang,)


def has_cjk(text: str) -> bool:
    """Whether the first `SCAN_CHARS` characters of text hold a CJK character (`CJK_BLOCKS`)."""
    return _CJK.search(text, 0, SCAN_CHARS) is not None


def cjk_surprise(text: str, limit: int = SURPRISE_CHARS) -> float:
    """Mean surprise (nats per character) of text's CJK characters under the character model
    of the language they look like; 0 when the text holds too few CJK characters to judge.

    Lower reads more like the language: a wrong CJK codec makes rare characters in odd order.
    """
    scan = SURPRISE_SCAN * limit
    chars = _CJK.findall(text, 0, scan)[:limit]
    if len(chars) < 2:
        return 0.0
    from textmend_server.cjk.lm import get_model

    runs = _CJK_RUN.findall(text, 0, scan)[:limit]
    # Score within runs of adjacent CJK characters (context across other text is noise), under
    # whichever model that may read them reads them best.
    best = min(
        -sum(get_model(lang).score(run[:limit]) for run in runs)
        for lang in cjk_languages("".join(chars))
    )
    return best / len(chars)


# ISO-2022 designations and shift codes: left in a text, they say a 7-bit CJK codec was read as
# ASCII.
_SHIFT_CODES = re.compile(r"\x1b\$[()]?[@ABCD]|[\x0e\x0f]")


def shift_codes(text: str) -> int:
    """How many ISO-2022 escapes and shift codes the first `SCAN_CHARS` of text hold."""
    return len(_SHIFT_CODES.findall(text, 0, SCAN_CHARS))


# ISO-2022-JP's designations of JIS X 0208 (ESC $ @, ESC $ B) and its returns to ASCII or JIS
# Roman (ESC ( B, ESC ( J). A 7-bit sample that designates JIS X 0208 is ISO-2022-JP: no other
# text writes those escapes, and its bytes hold nothing above 0x7F for the language models to
# read, so it is decided by its escapes.
_JIS_IN = re.compile(rb"\x1b\$[@B]")
_JIS_OUT = re.compile(rb"\x1b\([BJ]")


def iso2022_jp(sample: bytes) -> str | None:
    """The sample read as ISO-2022-JP when it is 7-bit, designates JIS X 0208 and decodes
    (up to its last return to ASCII, when the sample ends inside a JIS run); else None.

    >>> iso2022_jp("文字セット".encode("iso2022_jp"))
    '文字セット'
    """
    if not sample.isascii() or _JIS_IN.search(sample) is None:
        return None
    text = strict(sample, "iso2022_jp")
    if text is None:
        ends = [m.end() for m in _JIS_OUT.finditer(sample)]
        text = strict(sample[: ends[-1]], "iso2022_jp") if ends else None
    return text
