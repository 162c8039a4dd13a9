"""Which decoding reads as a real language: character-bigram models of alphabetic languages.

A wrong code page turns the letters of one language into the letters of another script or
into letter sequences no language writes (`áticas` → `įticas`, `Привет` → `Ďđčâĺň`); a byte
count cannot see that, a model of each language's letter pairs can. This module prices a
decoded text in nats (−log P) under the language of its own script that explains it best, so
decodings of the same bytes can be compared: the bytes are the same, so the likelier text is
the likelier decoding.

How the models are built (once per process, at warm-up before workers fork, or on first use):
for each language in `LANGUAGES`, the `SOURCE_WORDS` most frequent words of wordfreq's 'small'
list (a project dependency; its lists come from Wikipedia, subtitles, news, books, the web and
more, see wordfreq's README) add their frequency to the count of every letter pair inside
them, word boundaries included. A language wordfreq has no list for takes its counts from
`WORD_LIST_TABLE`: every word form of a spelling dictionary (or, for Turkmen, which has none,
every word of a few translation catalogues) counted once. Then

    P(b | a) = LAMBDA · pair(a, b) / count(a) + (1 − LAMBDA) · P(b)

with P(b) the letter's frequency; letters the language never writes get `UNKNOWN_LETTER`.
Pairs seen less than `MIN_PAIR_SHARE` of the time are left to the unigram. Chinese, Japanese
and Korean go through the CJK character model (`cjk.lm`), which prices every class of
character itself.

What is scored, per decoding: every letter in runs of the text's dominant script (ASCII
letters join Latin runs), lower-cased; letters of other scripts, ASCII letters in non-Latin
text, digits, marks and symbols at fixed costs per class (`SYMBOL_COSTS`, set so that common
punctuation costs about what a letter in context does and control characters and private use
cost far more). The language is the one of its script with the lowest cost, among the three
that its non-ASCII letters alone favour.

Cost: a few MB for the 40 models (about 3 MB for 30, measured with tracemalloc) and half a
second to build them; scoring reads a text once at C speed (translate, count) and looks up
each distinct letter pair once per language tried.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import operator
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from textmend_server.cjk.scripts import ranges_class
from textmend_server.cjkreadings import cjk_languages
from textmend_server.plausibility import case_break

# Languages modelled, by the script they are written in: every language with a wordfreq list
# whose legacy code pages textmend decodes (windows-1250…1258, ISO-8859-n, KOI8, Mac and DOS
# pages), and the others of those scripts, so that a text in Catalan is not forced to read as
# Spanish; and, from spelling dictionaries or translation catalogues (`WORD_LIST_TABLE`),
# languages of those code pages wordfreq has no list for and a modelled language misreads:
# Albanian's windows-1252 `ë` read as Lithuanian's windows-1257 `ė`, Afrikaans' `ê` as
# Polish's `ę`, Esperanto's ISO-8859-3 `ĉ` as windows-1250's `Ć`, Turkmen's windows-1250 `ý`
# as Turkish's windows-1254 `ı`.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "latin": (
        "en", "de", "fr", "es", "pt", "it", "nl", "sv", "da", "nb", "fi", "is", "ca", "pl",
        "cs", "sk", "hu", "ro", "sl", "sh", "tr", "lt", "lv", "vi", "id", "fil",
        "sq", "et", "af", "eo", "tk",
    ),
    "cyrillic": ("ru", "uk", "bg", "mk"),
    "greek": ("el",),
    "hebrew": ("he",),
    "arabic": ("ar", "fa", "ur"),
}  # fmt: skip

# Other ISO 639-1 codes of languages the models above read (chardet names Croatian and Serbian
# `hr` and `sr`, wordfreq's list is Serbo-Croatian `sh`; Norwegian `no` is Bokmål here, and
# Malay `ms` is close enough to Indonesian that one model reads both), and the CJK languages,
# which the CJK character model reads.
READ_AS = {"hr": "sh", "sr": "sh", "bs": "sh", "no": "nb", "nn": "nb", "ms": "id", "tl": "fil"}
CJK_LANGUAGES = frozenset({"zh", "ja", "ko"})


def reads(lang: str) -> bool:
    """Whether a model here reads the language lang (ISO 639-1, as chardet names it).

    >>> reads("de"), reads("hr"), reads("ja"), reads("sq"), reads("mt"), reads("ga")
    (True, True, True, True, False, False)
    """
    lang = READ_AS.get(lang, lang)
    return lang in CJK_LANGUAGES or any(lang in langs for langs in LANGUAGES.values())


# Words read from each list, most frequent first: the common words carry nearly all of the
# frequency mass (the 20,000th word of a wordfreq list has a frequency near 1e-6).
SOURCE_WORDS = 20_000
# Weight of the letter-pair estimate against the letter's own frequency.
LAMBDA = 0.95
# Pairs rarer than this share of all pairs are dropped (priced by the unigram instead): keeps
# the tables small; 1e-7 is about one occurrence in the pairs of ten million words.
MIN_PAIR_SHARE = 1e-7
# −log P of a letter the language never writes in its own script, in nats: a little rarer than
# its rarest letter (those sit near 1e-5 to 1e-6 of letters in the lists).
UNKNOWN_LETTER = 16.0
# −log P of a letter of a script no model here covers, when most of a text's non-Latin letters
# are in it: uniform over an alphabet of about 70 letters (Thai's consonants, vowels and tone
# marks: ln 70 ≈ 4.2), plus a margin so that a modelled language that reads well still wins.
# Without it, Thai in TIS-620 was read as garbled Cyrillic (chardet's test files,
# bench/detect_bench.py).
UNMODELLED_LETTER = 5.0

# Costs in nats of characters outside the letter runs, by class (see `_CLASS_OF`):
# a letter of a script no model here covers (or of a third script in one text), a
# combining mark, a non-ASCII digit, common punctuation (’ “ ” « » – — … • · ° € © nbsp),
# other symbols, and characters text does not hold (C0/C1 controls, private use, U+FFFD,
# unassigned). Chosen on the benchmark's tune split (bench/legacy_decoding.py): common
# punctuation about two letters in context, rare symbols twice that, non-text near a letter
# the language never writes.
SYMBOL_COSTS = {
    "o": UNKNOWN_LETTER,
    "k": UNKNOWN_LETTER,
    "m": 4.0,
    "d": 8.0,
    "p": 5.0,
    "q": 10.0,
    "x": 20.0,
}
# Characters that running text in any script uses often (the superscript digits of `m²` and
# footnotes and the ordinal indicators of `2ª` among them): class "p".
COMMON_PUNCT = frozenset(
    "\u2019\u2018\u201c\u201d\u201e\u00ab\u00bb\u2013\u2014\u2026\u2022\u00b7\u00b0\u20ac"
    "\u00a9\u00ae\u2122\u00a0\u00a7\u00a3\u00bf\u00a1\u2116\u2039\u203a\u2212\u00b4"
    "\u060c\u061b\u061f\u05be\u0387\u037e\u00b9\u00b2\u00b3\u00aa\u00ba"
)

_SCRIPT_RANGES = {
    "L": ((0xC0, 0x24F), (0x1E00, 0x1EFF)),
    "C": ((0x400, 0x52F),),
    "G": ((0x370, 0x3FF), (0x1F00, 0x1FFF)),
    "H": ((0x5D0, 0x5F2),),
    "A": ((0x620, 0x64A), (0x66E, 0x6D3), (0x6D5, 0x6D5), (0x6FA, 0x6FF), (0x750, 0x77F)),
}
_SCRIPT_NAME = {"L": "latin", "C": "cyrillic", "G": "greek", "H": "hebrew", "A": "arabic"}
_SCRIPT_CODE = {v: k for k, v in _SCRIPT_NAME.items()}


def _build_classes() -> str:
    """A translation table (a string indexed by code point) giving each BMP character its
    class: a script code (L C G H A) for the letters of the modelled scripts, 'J' for CJK, 'o'
    other letters, 'a' ASCII letters, 'm' marks, 'd' digits, 'p' common punctuation, 'q' other
    symbols, 'x' non-text, ' ' space and ASCII punctuation (free: every decoding of the same
    bytes has them alike). Characters beyond the BMP are left as they are (counted as none)."""
    table: list[str] = []
    for code in range(0x10000):
        ch = chr(code)
        cat = unicodedata.category(ch)
        if code < 0x80:
            cls = "a" if ch.isalpha() else "d" if ch.isdigit() else " "
        elif ch in COMMON_PUNCT:
            cls = "p"
        elif cat[0] == "L":
            cls = "o"
        elif cat[0] == "M":
            cls = "m"
        elif cat[0] == "N":
            cls = "d"
        elif cat in ("Zs", "Zl", "Zp"):
            cls = " "
        elif cat in ("Cc", "Co", "Cn", "Cs") or ch == "\ufffd":
            cls = "x"
        else:
            cls = "q"
        table.append(cls)
    for script, ranges in _SCRIPT_RANGES.items():
        for lo, hi in ranges:
            for code in range(lo, hi + 1):
                if table[code] == "o":
                    table[code] = script
    for lo, hi in ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3)):
        for code in range(lo, hi + 1):
            table[code] = "J"
    for code in range(ARCHAIC_JAMO[0], ARCHAIC_JAMO[1] + 1):
        table[code] = "k"
    return "".join(table)


# Old Hangul letters standing alone (the archaic compatibility jamo U+3165–318E: `ㅥ`, `ㆆ`,
# `ㆍ`...): no modern Korean text writes them, but EUC-KR puts them where EUC-JP has the
# commonest hiragana (row A4 from A4D4 on: `の`, `ん`, `る`, `を`...), so a short Japanese
# dictionary read as EUC-KR is full of them. As letters of no modelled script they were priced
# as an unmodelled alphabet's (`UNMODELLED_LETTER`), below what the Japanese model asks of
# real kana; they are class "k", priced as a letter the language never writes. The modern
# jamo (U+3131–3164) stay letters of their own: keyboard tables and input methods list them.
ARCHAIC_JAMO = (0x3165, 0x318E)


_CLASS_OF = _build_classes()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Letters of two scripts touching inside one word (`UЇYTKOWNIK`, `ИИn`, `Blنttermann`): what a
# wrong code page makes of a word; each touch (counted overlapping, so a letter wedged into a
# word counts twice) is priced SWITCH_NATS on top of the letters.
_SWITCH = {code: re.compile(f"(?=[aL]{code}|{code}[aL])") for code in "CGHAo"}
SWITCH_NATS = 10.0
# A CJK character with Latin letters on both sides (`Gr鲞e`, `k鰊nen`): what a CJK codec makes
# of two Latin-1 bytes in a word. Real CJK text puts Latin words beside CJK ones, rarely a
# single CJK character inside a Latin word; priced as a switch on each side.
_CJK_IN_WORD = re.compile(
    "(?<=[A-Za-z\u00c0-\u024f])[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7a3](?=[A-Za-z\u00c0-\u024f])"
)
# Between words: a change from Latin letters to the other script's or back, non-letters
# skipped (`… con l'utente и fatta …`: an Italian `è` read in windows-1251 puts one Russian
# word in an Italian sentence). Real texts switch too (a Russian man page names its options in
# ASCII), but their wrong readings pay far more per letter than this; set on the tune split.
WORD_SWITCH_NATS = 4.0
# A closing quote or apostrophe opening a word (`’κυρο`): what ISO-8859-7 makes of the
# windows-1253 `Ά`, and what text rarely writes (elision puts it after letters: `σ’ αγαπώ`).
# Except before a one-letter word: Afrikaans' article `’n`, Dutch `’s` and `’t`, English
# `rock ’n’ roll` are elisions that open a word (Afrikaans windows-1252 text, an `’n` in
# every sentence, read as Mac Roman's `ín`: real articles re-encoded, docs/real-text.md).
# So does a superscript digit opening a word (`¹ifri`): footnote marks and powers follow
# what they mark; windows-1252 makes it of ISO-8859-4's `š` (Estonian `šifri`).
_LEADING_QUOTE = re.compile(
    r"(?:(?<![^\W\d_])[\u2019\u00bb](?![^\W\d_]\b)|(?<!\w)[\u00b9\u00b2\u00b3])(?=[^\W\d_])"
)
LEADING_QUOTE_NATS = 5.0
# A combining mark on nothing it can belong to, after NFC composition: a Latin combining mark
# that did not compose (windows-1258 reading Catalan `això` as `aix` + U+0323), or a Hebrew,
# Arabic or Cyrillic mark not following a letter or mark of its own script (`dْas`, `ْltimo`:
# Spanish `ú` read in windows-1256). Priced as non-text instead of as a mark.
_ORPHAN_MARK = re.compile(
    "[\u0300-\u036f]"
    "|(?<![\u0591-\u05f2])[\u0591-\u05bd\u05bf-\u05c2\u05c4-\u05c7]"
    "|(?<![\u0610-\u06ff\u0750-\u077f])[\u0610-\u061a\u064b-\u065f\u0670]"
    "|(?<![\u0400-\u0489])[\u0483-\u0489]"
)
# A non-ASCII symbol or punctuation mark (classes p, q) between two letters of a word
# (`au‗er`, `b³êdach`, `Ιθ±Έ`): a letter of another code page. Counted on the classes, less
# those at home there (`_WEDGED_OK`): the apostrophe, the acute accent many write for one
# (`UID´s`), the middle dot of Catalan `l·l`, the soft hyphen, Unicode hyphens and the
# no-break spaces (`«\u00a0mot\u00a0»`).
_WEDGED = re.compile("(?<=[aLCGHAJo])[pq](?=[aLCGHAJo])")
_WEDGED_OK = re.compile(
    "(?<=[^\\W\\d_])[\u2019\u2018\u00b4\u00b7\u00ad\u2010\u2011\u00a0\u202f](?=[^\\W\\d_])"
)
# The middle dot closing a word (`est· desactivado`: Spanish `á` read in Mac Roman): lists
# set it between spaces, Catalan between two l's; priced as wedged.
_DOT_AFTER_WORD = re.compile("(?<=[^\\W\\d_])\u00b7(?![^\\W\\d_])")
WEDGED_NATS = 10.0


# A non-ASCII capital right after a lower-case letter (`nobodyŤ`, `пРиВЕТ`).
_CASE_BREAK = case_break(followed=False)
CASE_BREAK_NATS = 8.0


def _ranges(code: str) -> str:
    return ranges_class(_SCRIPT_RANGES[code])


# Per script: the characters that are not its letters (ASCII letters count as Latin), which
# become word breaks, and the marks, which are dropped (priced as marks).
_BREAK = {
    code: re.compile(f"[^\n{'a-z' if code == 'L' else ''}{_ranges(code)}]+")
    for code in _SCRIPT_NAME
}
_MARKS = re.compile(
    "[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u0640\u064b-\u065f\u0670]"
)


# s and t with cedilla and with comma below are one letter to Romanian and Turkish readers
# (windows-1250 has only the cedilla forms, ISO-8859-16 the comma ones): folded, so that the
# choice between those code pages is left to how common they are. German ß is folded into
# ss, as wordfreq's lists have it (they are case-folded: `größe` is listed as `grösse`), so
# that ß is not priced as a letter German never writes.
_FOLD_LATIN = str.maketrans({"\u015f": "\u0219", "\u0163": "\u021b", "\u00df": "ss"})


def _letters(text: str, code: str) -> str:
    """text lower-cased, marks dropped, everything but the letters of script code (and line
    breaks) turned into single spaces (Greek final sigma folded into sigma, as wordfreq's
    lists have it; Latin ş ţ into ș ț, ß into ss)."""
    text = _MARKS.sub("", text.lower())
    if code == "G":
        text = text.replace("\u03c2", "\u03c3")
    elif code == "L":
        text = text.translate(_FOLD_LATIN)
    return _BREAK[code].sub(" ", text)


@dataclass
class LetterModel:
    """Letter-pair log-probabilities of one language (space marks word boundaries)."""

    lang: str
    pairs: dict[str, float]  # "ab" → log P(b | a)
    letters: dict[str, float]  # b → log((1 − LAMBDA) · P(b)), the price of an unseen pair

    def cost(self, counts: Counter[str]) -> float:
        """−log P, in nats, of the letter pairs counted (each "ab" as many times as seen)."""
        pairs, letters = self.pairs, self.letters
        total = 0.0
        for pair, n in counts.items():
            lp = pairs.get(pair)
            if lp is None:
                lp = letters.get(pair[1], -UNKNOWN_LETTER)
            total -= n * lp
        return total

    def pair_cost(self, pair: str) -> float:
        """−log P(b | a), in nats, of one letter pair "ab"."""
        lp = self.pairs.get(pair)
        if lp is None:
            lp = self.letters.get(pair[1], -UNKNOWN_LETTER)
        return -lp

    def unigram_cost(self, counts: Counter[str]) -> float:
        """−log P of single letters counted, from the unigram alone (for ranking languages)."""
        letters = self.letters
        return -sum(n * letters.get(ch, -UNKNOWN_LETTER) for ch, n in counts.items())


def build(lang: str, words: int = SOURCE_WORDS) -> LetterModel:
    """The letter-pair model of lang: from wordfreq's list, or from the word-list table for
    the languages wordfreq has none for (see the module docstring)."""
    script = next(s for s, langs in LANGUAGES.items() if lang in langs)
    listed = word_list_pairs().get(lang)
    if listed is not None:
        return _from_pairs(lang, Counter(listed))
    import wordfreq

    code = _SCRIPT_CODE[script]
    pair: Counter[float] = Counter()
    listed_words = list(itertools.islice(wordfreq.get_frequency_dict(lang, "small").items(), words))
    # All words in one pass of the regular expressions, one word a line; then counted by
    # frequency band (wordfreq's frequencies come in bands of equal value), each band's words
    # space-joined so that every word brings both of its boundary pairs.
    joined = "\n".join(word for word, _ in listed_words).replace(" ", "\t")
    cleaned = _letters(joined, code).split("\n")
    for f, band in itertools.groupby(
        zip(cleaned, listed_words, strict=True), key=lambda x: x[1][1]
    ):
        kept = [w for w, _ in band if w and " " not in w]  # letters only, nothing else inside
        if not kept:
            continue
        padded = " " + " ".join(kept) + " "
        for ab, n in Counter(map(operator.add, padded, padded[1:])).items():
            pair[ab] += n * f
    return _from_pairs(lang, pair)


def _from_pairs(lang: str, pair: Counter[str] | Counter[float]) -> LetterModel:
    """The model of letter-pair weights pair (a letter's weight is that of the pairs it ends:
    every letter ends one, the space after a word included)."""
    uni: Counter[str] = Counter()
    out_of: Counter[str] = Counter()
    for ab, f in pair.items():
        uni[ab[1]] += f
        out_of[ab[0]] += f
    total = sum(uni.values())
    letters_lp = {ch: math.log((1 - LAMBDA) * f / total) for ch, f in uni.items()}
    pairs_lp = {
        ab: math.log(LAMBDA * f / out_of[ab[0]] + (1 - LAMBDA) * uni[ab[1]] / total)
        for ab, f in pair.items()
        if f >= MIN_PAIR_SHARE * total
    }
    return LetterModel(lang, pairs_lp, letters_lp)


def letter_form(text: str, script: str) -> str:
    """text as the models of script (a key of `LANGUAGES`) read it: lower-cased, marks
    dropped, everything but that script's letters and line breaks made single spaces."""
    return _letters(text, _SCRIPT_CODE[script])


# Letter-pair counts of the languages wordfreq has no list for, from spelling dictionaries
# and catalogues (built by scripts/build_letter_tables.py, which says how; sources and
# licences are in it).
WORD_LIST_TABLE = Path(__file__).with_name("letter_pairs.json")


@functools.cache
def word_list_pairs() -> dict[str, dict[str, int]]:
    """Letter-pair counts per language of `WORD_LIST_TABLE`."""
    table = json.loads(WORD_LIST_TABLE.read_text(encoding="utf-8"))
    return {lang: body["pairs"] for lang, body in table.items()}


_MODELS: dict[str, LetterModel] = {}


def model(lang: str) -> LetterModel:
    """The model of lang, built on first use and kept for the process's life."""
    found = _MODELS.get(lang)
    if found is None:
        found = _MODELS[lang] = build(lang)
    return found


def warm_up() -> None:
    """Build every model now (the server calls this before its workers fork)."""
    for langs in LANGUAGES.values():
        for lang in langs:
            model(lang)


@dataclass(frozen=True)
class Reading:
    """How a decoded text reads: its cost in nats and the language that explains it best
    ('' when nothing in it is a letter of a modelled script)."""

    cost: float
    lang: str


def _cjk_cost(text: str) -> Reading:
    from textmend_server.cjk.lm import get_model

    scored = (Reading(-get_model(lang).score(text), lang) for lang in cjk_languages(text))
    return min(scored, key=lambda r: r.cost)


def cost(text: str, hint: tuple[str, ...] = ()) -> Reading:
    """−log P of text, in nats: its Latin-script words under the likeliest Latin-script
    language, and the letters of the script most of its other letters are in under the
    likeliest language of that script (the CJK character model for Chinese, Japanese and
    Korean), or priced as letters no language here writes, whichever explains it best.

    The text is put in NFC first, so a letter and the combining marks that make one letter
    with it are priced as that letter (Vietnamese in windows-1258 writes tones as marks).

    hint names Latin-script languages to try besides the three its letters favour (see
    `rank_latin`: all readings of one document share its ASCII words, which say its language
    better than the few letters that differ between them).

    Texts holding the same bytes decoded differently can be compared: lower reads more like a
    real language.

    >>> cost("Matemáticas e estatísticas").cost < cost("Matemįticas e estatķsticas").cost
    True
    >>> cost("Здравствуйте, как ваши дела?").lang
    'ru'
    >>> cost("Привет, мир").cost < cost("Ďđčâĺň, ěčđ").cost
    True
    >>> cost("l'utente è fatta").cost < cost("l'utente и fatta").cost
    True
    """
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    classes = text.translate(_CLASS_OF)
    letters = {code: classes.count(code) for code in "LCGHAJo"}
    fixed = sum(classes.count(cls) * SYMBOL_COSTS[cls] for cls in "mdpqxk")
    fixed += len(_ASTRAL.findall(text)) * SYMBOL_COSTS["x"]
    fixed += len(_LEADING_QUOTE.findall(text)) * LEADING_QUOTE_NATS
    fixed += len(_ORPHAN_MARK.findall(text)) * (SYMBOL_COSTS["x"] - SYMBOL_COSTS["m"])
    wedged = len(_WEDGED.findall(classes)) - len(_WEDGED_OK.findall(text))
    fixed += (max(0, wedged) + len(_DOT_AFTER_WORD.findall(text))) * WEDGED_NATS
    fixed += len(_CASE_BREAK.findall(text)) * CASE_BREAK_NATS
    # Letters of another script inside a Latin word, however the reading is priced.
    inside = sum(len(_SWITCH[code].findall(classes)) for code in "CGHAo" if letters[code])
    inside += 2 * len(_CJK_IN_WORD.findall(text)) if letters["J"] else 0
    fixed += inside * SWITCH_NATS
    latin, latin_lang = _script_cost(text, "L", hint)
    other = max("CGHAJ", key=lambda k: letters[k])
    foreign = sum(letters.values()) - letters["L"]
    best = Reading(round(fixed + latin + foreign * SYMBOL_COSTS["o"], 2), latin_lang)
    if letters["o"] > max(letters[code] for code in "CGHAJ"):
        # Mostly a script no model here covers (Thai in TIS-620, Armenian, Georgian...): its
        # letters priced as an unknown language of that script would be, the rest as above.
        unmodelled = letters["o"] * UNMODELLED_LETTER + (foreign - letters["o"]) * UNKNOWN_LETTER
        best = min(best, Reading(round(fixed + latin + unmodelled, 2), ""), key=lambda r: r.cost)
    if not letters[other]:
        return best
    if other == "J":
        found = _cjk_cost(text)
        total = round(found.cost + fixed, 2)
        return Reading(total, found.lang) if total < best.cost else best
    own, lang = _script_cost(text, other)
    words = classes.translate(_LETTERS_OF[other])
    switches = len(_SWITCH[other].findall(words)) * WORD_SWITCH_NATS
    rest = (foreign - letters[other]) * SYMBOL_COSTS["o"]
    total = round(fixed + latin + own + switches + rest, 2)
    if total < best.cost:
        best = Reading(total, lang if letters[other] >= letters["L"] else latin_lang)
    return best


# Per script code: a translation table keeping only Latin letters (classes `a`, `L`) and that
# script's letters, for counting switches between words.
_LETTERS_OF = {
    code: {ord(c): None for c in " LCGHAJoamdpqx" if c not in ("a", "L", code)} for code in "CGHA"
}


# A second language for the words holding non-ASCII letters: each letter pair involving one is
# priced by the text's language or by the likeliest other language of its script plus
# MIX_NATS (−log of the share of such pairs a text borrows; e(−4) ≈ 2%), whichever is
# cheaper. A Croatian handbook page mostly in English reads `Početak` as Croatian, not as a
# Danish word with an unknown letter; a German name in a Dutch man page is German. Set on the
# tune split.
MIX_NATS = 4.0


def _script_cost(text: str, code: str, hint: tuple[str, ...] = ()) -> tuple[float, str]:
    """−log P of the words of script code in text (ASCII letters are Latin) under the
    likeliest language of that script, and that language; (0, '') when there are none.

    The language is the cheapest of the three the non-ASCII letters favour (all letters, when
    there are none), the three all letters favour, and those of hint. Pairs holding a
    non-ASCII letter may be priced by a second language of those (see `MIX_NATS`; hint's
    first, the language of the document's shared ASCII words, at no extra cost).
    """
    words = _letters(text, code).split()
    if not words:
        return 0.0, ""
    padded = " " + " ".join(words) + " "
    pairs = Counter(map(operator.add, padded, padded[1:]))
    langs = LANGUAGES[_SCRIPT_NAME[code]]
    if len(langs) > 3:
        chars = Counter(padded)
        wide = Counter({ch: n for ch, n in chars.items() if ch > "\x7f"}) or chars
        by_wide = sorted(langs, key=lambda lang: model(lang).unigram_cost(wide))[:3]
        by_all = (
            by_wide
            if wide is chars  # (no letter beyond ASCII: the same ranking)
            else sorted(langs, key=lambda lang: model(lang).unigram_cost(chars))[:3]
        )
        langs = tuple(dict.fromkeys([*by_wide, *by_all, *(h for h in hint if h in langs)]))
    foreign = [(pair, n) for pair, n in pairs.items() if not pair.isascii()]
    if not foreign or len(langs) == 1:
        return min((model(lang).cost(pairs), lang) for lang in langs)
    # The language is the one that, with what it borrows, explains the text best: a Dutch
    # reading of Afrikaans borrowing `ê` from Afrikaans, not an Afrikaans one, competes with
    # a Dutch reading of windows-1250's `ę` borrowed from Polish.
    return min((_borrowing_cost(main, langs, pairs, foreign, hint), main) for main in langs)


def _borrowing_cost(
    lang: str,
    langs: tuple[str, ...],
    pairs: Counter[str],
    foreign: list[tuple[str, int]],
    hint: tuple[str, ...],
) -> float:
    """−log P of pairs under lang, its pairs holding a non-ASCII letter (foreign) priced by the
    one other language of langs that explains them best, where that is cheaper by more than
    `MIX_NATS` (by anything, for hint's first)."""
    main = model(lang)
    own = {pair: main.pair_cost(pair) for pair, _ in foreign}
    saved = 0.0
    for other in langs:
        if other == lang:
            continue
        alt = model(other)
        # The document's own language (hint's first) is no borrowing.
        extra = 0.0 if hint and other == hint[0] else MIX_NATS
        gain = sum(n * max(0.0, own[pair] - alt.pair_cost(pair) - extra) for pair, n in foreign)
        saved = max(saved, gain)
    return main.cost(pairs) - saved


# Words of ASCII letters only, bounded by neither letters nor high bytes (so `kopi` of
# `kopi\xebren` is not one): the part of a document every single-byte reading shares.
_ASCII_WORD = re.compile(rb"(?<![A-Za-z\x80-\xff])[A-Za-z]{2,}(?![A-Za-z\x80-\xff])")
# Letters of ASCII words `rank_latin` reads: a few hundred words say a text's language.
RANK_LETTERS = 4000
# Latin-script languages `rank_latin` names.
RANK_KEEP = 3


def rank_latin(content: bytes) -> tuple[str, ...]:
    """The RANK_KEEP Latin-script languages whose letter pairs best explain the ASCII words
    of content (up to RANK_LETTERS letters), likeliest first; () when it has none.

    A Dutch man page whose accented letters are mostly `vóór` and `één` reads as Hungarian
    or Catalan if only its letters' frequencies are asked; its ASCII words say Dutch.

    >>> rank_latin(b"De gebruiker kan de bestanden kopieren naar een andere map.")[0]
    'nl'
    """
    words: list[str] = []
    size = 0
    for match in _ASCII_WORD.finditer(content):
        words.append(match.group().decode("ascii").lower())
        size += len(words[-1]) + 1
        if size >= RANK_LETTERS:
            break
    if not words:
        return ()
    padded = " " + " ".join(words) + " "
    pairs = Counter(map(operator.add, padded, padded[1:]))
    langs = LANGUAGES["latin"]
    return tuple(sorted(langs, key=lambda lang: model(lang).cost(pairs))[:RANK_KEEP])
