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
them, word boundaries included. Then

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

Cost: about 3 MB for the 30 models (measured with tracemalloc, see `warm_up`) and half a
second to build them; scoring reads a text once at C speed (translate, count) and looks up
each distinct letter pair once per language tried.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

# Languages with a wordfreq list, by the script they are written in: every language whose
# legacy code pages textmend decodes (windows-1250…1258, ISO-8859-n, KOI8, Mac and DOS pages),
# and the others of those scripts, so that a text in Catalan is not forced to read as Spanish.
LANGUAGES: dict[str, tuple[str, ...]] = {
    "latin": (
        "en", "de", "fr", "es", "pt", "it", "nl", "sv", "da", "nb", "fi", "is", "ca", "pl",
        "cs", "sk", "hu", "ro", "sl", "sh", "tr", "lt", "lv", "vi", "id", "fil",
    ),
    "cyrillic": ("ru", "uk", "bg", "mk"),
    "greek": ("el",),
    "hebrew": ("he",),
    "arabic": ("ar", "fa", "ur"),
}  # fmt: skip

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

# Costs in nats of characters outside the letter runs, by class (see `_CLASS_OF`):
# a letter of a script no model here covers (or of a third script in one text), a
# combining mark, a non-ASCII digit, common punctuation (’ “ ” « » – — … • · ° € © nbsp),
# other symbols, and characters text does not hold (C0/C1 controls, private use, U+FFFD,
# unassigned). Chosen on the benchmark's tune split (bench/legacy_decoding.py): common
# punctuation about two letters in context, rare symbols twice that, non-text near a letter
# the language never writes.
SYMBOL_COSTS = {
    "o": UNKNOWN_LETTER,
    "m": 4.0,
    "d": 8.0,
    "p": 5.0,
    "q": 10.0,
    "x": 20.0,
}
# Characters that running text in any script uses often: class "p".
COMMON_PUNCT = frozenset(
    "\u2019\u2018\u201c\u201d\u201e\u00ab\u00bb\u2013\u2014\u2026\u2022\u00b7\u00b0\u20ac"
    "\u00a9\u00ae\u2122\u00a0\u00a7\u00a3\u00bf\u00a1\u2116\u2039\u203a\u2212\u00b4"
    "\u060c\u061b\u061f\u05be\u0387\u037e"
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
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff]")


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
    return "".join(table)


_CLASS_OF = _build_classes()
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# A Latin letter touching a letter of another script inside one word (`UЇYTKOWNIK`, `ИИn`):
# what a wrong code page makes of a Latin word; priced SWITCH_NATS on top of the letters.
_SWITCH = {code: re.compile(f"[aL]{code}|{code}[aL]") for code in "CGHA"}
SWITCH_NATS = 10.0
# A closing quote or apostrophe opening a word (`’κυρο`): what ISO-8859-7 makes of the
# windows-1253 `Ά`, and what no text writes (elision puts it after letters: `σ’ αγαπώ`).
_LEADING_QUOTE = re.compile(r"(?<![^\W\d_])[\u2019\u00bb](?=[^\W\d_])")
LEADING_QUOTE_NATS = 5.0
# A Hebrew, Arabic or Cyrillic combining mark on an ASCII letter (`dْas`): no script does
# that; priced as non-text.
_STRAY_MARK = re.compile("[A-Za-z][\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670]")


def _ranges(code: str) -> str:
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in _SCRIPT_RANGES[code])


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
# choice between those code pages is left to how common they are.
_FOLD_LATIN = str.maketrans("\u015f\u0163", "\u0219\u021b")


def _letters(text: str, code: str) -> str:
    """text lower-cased, marks dropped, everything but the letters of script code (and line
    breaks) turned into single spaces (Greek final sigma folded into sigma, as wordfreq's
    lists have it; Latin ş ţ into ș ț)."""
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

    def unigram_cost(self, counts: Counter[str]) -> float:
        """−log P of single letters counted, from the unigram alone (for ranking languages)."""
        letters = self.letters
        return -sum(n * letters.get(ch, -UNKNOWN_LETTER) for ch, n in counts.items())


def build(lang: str, words: int = SOURCE_WORDS) -> LetterModel:
    """The letter-pair model of lang from wordfreq's list (see the module docstring)."""
    import wordfreq

    script = next(s for s, langs in LANGUAGES.items() if lang in langs)
    code = _SCRIPT_CODE[script]
    pair: Counter[str] = Counter()
    uni: Counter[str] = Counter()
    listed = list(itertools.islice(wordfreq.get_frequency_dict(lang, "small").items(), words))
    # All words in one pass of the regular expressions, one word a line; then counted by
    # frequency band (wordfreq's frequencies come in bands of equal value), each band's words
    # space-joined so that every word brings both of its boundary pairs.
    joined = "\n".join(word for word, _ in listed).replace(" ", "\t")
    cleaned = _letters(joined, code).split("\n")
    for f, band in itertools.groupby(zip(cleaned, listed, strict=True), key=lambda x: x[1][1]):
        kept = [w for w, _ in band if w and " " not in w]  # letters only, nothing else inside
        if not kept:
            continue
        padded = " " + " ".join(kept) + " "
        for ab, n in Counter(map(operator.add, padded, padded[1:])).items():
            pair[ab] += n * f
        for ch, n in Counter(padded[1:]).items():  # a word's letters and the space after it
            uni[ch] += n * f
    total = sum(uni.values())
    out_of = Counter[str]()
    for ab, f in pair.items():
        out_of[ab[0]] += f
    letters_lp = {ch: math.log((1 - LAMBDA) * f / total) for ch, f in uni.items()}
    all_pairs = sum(pair.values())
    pairs_lp = {
        ab: math.log(LAMBDA * f / out_of[ab[0]] + (1 - LAMBDA) * uni[ab[1]] / total)
        for ab, f in pair.items()
        if f >= MIN_PAIR_SHARE * all_pairs
    }
    return LetterModel(lang, pairs_lp, letters_lp)


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

    kana = sum(1 for ch in text if "\u3040" <= ch <= "\u30ff")
    hangul = sum(1 for ch in text if "\uac00" <= ch <= "\ud7a3")
    cjk = len(_CJK.findall(text))
    lang = "ko" if hangul > cjk / 3 else "ja" if kana > cjk / 10 else "zh"
    return Reading(-get_model(lang).score(text), lang)


def cost(text: str) -> Reading:
    """−log P of text, in nats: its Latin-script words under the likeliest Latin-script
    language, and the letters of the script most of its other letters are in under the
    likeliest language of that script (the CJK character model for Chinese, Japanese and
    Korean), or priced as letters no language here writes, whichever explains it best.

    Texts holding the same bytes decoded differently can be compared: lower reads more like a
    real language.

    >>> cost("Matemáticas e estatísticas").cost < cost("Matemįticas e estatķsticas").cost
    True
    >>> cost("Здравствуйте, как ваши дела?").lang
    'ru'
    >>> cost("Привет, мир").cost < cost("Ďđčâĺň, ěčđ").cost
    True
    """
    classes = text.translate(_CLASS_OF)
    letters = {code: classes.count(code) for code in "LCGHAJo"}
    fixed = sum(classes.count(cls) * SYMBOL_COSTS[cls] for cls in "mdpqx")
    fixed += len(_ASTRAL.findall(text)) * SYMBOL_COSTS["x"]
    fixed += len(_LEADING_QUOTE.findall(text)) * LEADING_QUOTE_NATS
    fixed += len(_STRAY_MARK.findall(text)) * SYMBOL_COSTS["x"]
    latin, latin_lang = _script_cost(text, "L")
    other = max("CGHAJ", key=lambda k: letters[k])
    foreign = sum(letters.values()) - letters["L"]
    best = Reading(round(fixed + latin + foreign * SYMBOL_COSTS["o"], 2), latin_lang)
    if not letters[other]:
        return best
    if other == "J":
        found = _cjk_cost(text)
        return found if found.cost < best.cost else best
    own, lang = _script_cost(text, other)
    switches = len(_SWITCH[other].findall(classes)) * SWITCH_NATS
    rest = (foreign - letters[other]) * SYMBOL_COSTS["o"]
    total = round(fixed + latin + own + switches + rest, 2)
    if total < best.cost:
        best = Reading(total, lang if letters[other] >= letters["L"] else latin_lang)
    return best


def _script_cost(text: str, code: str) -> tuple[float, str]:
    """−log P of the words of script code in text (ASCII letters are Latin) under the
    likeliest language of that script, and that language; (0, '') when there are none."""
    words = _letters(text, code).split()
    if not words:
        return 0.0, ""
    padded = " " + " ".join(words) + " "
    pairs = Counter(map(operator.add, padded, padded[1:]))
    langs = LANGUAGES[_SCRIPT_NAME[code]]
    if len(langs) > 3:
        chars = Counter(padded)
        langs = tuple(sorted(langs, key=lambda lang: model(lang).unigram_cost(chars))[:3])
    found, lang = min((model(lang).cost(pairs), lang) for lang in langs)
    return found, lang
