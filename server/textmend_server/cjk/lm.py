"""A contextual character model of Chinese, Japanese and Korean, built from wordfreq's lists.

Why a character model and not word frequencies: repairs compare candidates of different
lengths, and a unigram word model prefers fewer characters. A character bigram model scores
every character in its context, so a longer, coherent reconstruction beats a shorter one.

How it is built (once, lazily, per language): every word in wordfreq's frequency list adds its
frequency to the unigram count of each of its characters, to the count of each adjacent pair
inside it, and to the counts of word-initial and word-final characters. The probability of b
after a is then

    P(b | a) = (pair(a, b) + final(a) · initial(b) / Σ initial) / count(a)

(either b continues a word a is in, or a ends a word and b starts one), mixed with the unigram
to smooth it. Traditional characters are looked up through wordfreq's own traditional→
simplified mapping, and cost extra in simplified text (and simplified-only ones in traditional
text). Characters outside the Han, kana and hangul the lists know are scored by class: a table
of class-to-class transitions (how often punctuation, Latin letters, digits, kana or bopomofo
follow Han characters) that encodes what the scripts look like, not any one text.
"""

from __future__ import annotations

import gzip
import math
import os
from collections import defaultdict
from functools import lru_cache
from itertools import pairwise

from textmend_server.cjk.scripts import char_class

# P(class of next | class of previous), per language. Rows need not sum exactly to 1: they are
# normalised at build time. Kana inside Chinese, bopomofo inside running text, private-use
# characters and hangul outside Korean are what mojibake produces, and are priced accordingly.
_CLASS_TRANSITIONS: dict[str, dict[str, dict[str, float]]] = {
    "zh": {
        "han": {
            "han": 0.83,
            "punct": 0.14,
            "latin": 0.008,
            "digit": 0.008,
            "space": 0.006,
            "kana": 2e-5,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "punct": {
            "han": 0.75,
            "punct": 0.12,
            "latin": 0.03,
            "digit": 0.03,
            "space": 0.07,
            "kana": 2e-5,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "latin": {
            "han": 0.12,
            "punct": 0.06,
            "latin": 0.76,
            "digit": 0.01,
            "space": 0.05,
            "kana": 1e-5,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "digit": {
            "han": 0.3,
            "punct": 0.15,
            "latin": 0.02,
            "digit": 0.5,
            "space": 0.03,
            "kana": 1e-5,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "space": {
            "han": 0.4,
            "punct": 0.1,
            "latin": 0.3,
            "digit": 0.15,
            "space": 0.05,
            "kana": 1e-5,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
    },
    "ja": {
        "han": {
            "han": 0.45,
            "kana": 0.45,
            "punct": 0.08,
            "latin": 0.005,
            "digit": 0.005,
            "space": 0.002,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "kana": {
            "han": 0.3,
            "kana": 0.6,
            "punct": 0.09,
            "latin": 0.004,
            "digit": 0.004,
            "space": 0.002,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "punct": {
            "han": 0.45,
            "kana": 0.35,
            "punct": 0.1,
            "latin": 0.03,
            "digit": 0.03,
            "space": 0.03,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "latin": {
            "han": 0.08,
            "kana": 0.08,
            "punct": 0.06,
            "latin": 0.72,
            "digit": 0.01,
            "space": 0.05,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "digit": {
            "han": 0.3,
            "kana": 0.1,
            "punct": 0.1,
            "latin": 0.02,
            "digit": 0.45,
            "space": 0.03,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "space": {
            "han": 0.3,
            "kana": 0.2,
            "punct": 0.1,
            "latin": 0.25,
            "digit": 0.1,
            "space": 0.05,
            "bopomofo": 1e-6,
            "hangul": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
    },
    "ko": {
        "hangul": {
            "hangul": 0.78,
            "space": 0.15,
            "punct": 0.05,
            "han": 0.003,
            "latin": 0.005,
            "digit": 0.005,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "space": {
            "hangul": 0.8,
            "space": 0.02,
            "punct": 0.05,
            "han": 0.01,
            "latin": 0.06,
            "digit": 0.06,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "punct": {
            "hangul": 0.3,
            "space": 0.55,
            "punct": 0.1,
            "han": 0.005,
            "latin": 0.02,
            "digit": 0.02,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "han": {
            "hangul": 0.3,
            "han": 0.5,
            "space": 0.1,
            "punct": 0.1,
            "latin": 0.002,
            "digit": 0.002,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "latin": {
            "hangul": 0.15,
            "space": 0.1,
            "punct": 0.05,
            "han": 0.001,
            "latin": 0.7,
            "digit": 0.01,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
        "digit": {
            "hangul": 0.3,
            "space": 0.1,
            "punct": 0.1,
            "han": 0.001,
            "latin": 0.02,
            "digit": 0.45,
            "kana": 1e-6,
            "bopomofo": 1e-6,
            "other": 1e-4,
            "pua": 1e-7,
        },
    },
}

# How often each mark is the punctuation used, in CJK running text (script knowledge: these
# are the marks of the GB/T 15834 and JIS conventions, the rest share the remainder).
_PUNCT_SHARE: dict[str, float] = {
    "，": 0.30,
    "。": 0.20,
    "、": 0.07,
    "“": 0.05,
    "”": 0.05,
    "：": 0.03,
    "；": 0.01,
    "（": 0.02,
    "）": 0.02,
    "《": 0.015,
    "》": 0.015,
    "「": 0.02,
    "」": 0.02,
    "『": 0.003,
    "』": 0.003,
    "！": 0.01,
    "？": 0.01,
    "—": 0.01,
    "…": 0.01,
    "·": 0.008,
    "・": 0.008,
    ",": 0.08,
    ".": 0.05,
    "(": 0.015,
    ")": 0.015,
    ":": 0.01,
    "!": 0.005,
    "?": 0.005,
    '"': 0.005,
    "'": 0.003,
    "-": 0.01,
    "/": 0.004,
    "%": 0.004,
    "‘": 0.004,
    "’": 0.004,
}
_OTHER_PUNCT = 2e-7

_LANG_LIST = {"zh": "large", "ja": "large", "ko": "small"}


def _simplify_table() -> dict[int, str]:
    """wordfreq's traditional→simplified character mapping (what its own lookups use)."""
    import msgpack
    import wordfreq

    path = os.path.join(os.path.dirname(wordfreq.__file__), "data", "_chinese_mapping.msgpack.gz")
    with gzip.open(path, "rb") as f:
        return msgpack.load(f, raw=False, strict_map_key=False)


class CharModel:
    """Log-probabilities of characters in context for one language ('zh', 'ja' or 'ko').

    >>> m = get_model("zh")
    >>> m.logp("公", "司") > m.logp("公", "彼")
    True
    """

    def __init__(self, lang: str) -> None:
        import wordfreq

        self.lang = lang
        self._simplify: dict[int, str] = _simplify_table() if lang == "zh" else {}
        freqs = wordfreq.get_frequency_dict(lang, wordlist=_LANG_LIST[lang])
        uni: dict[str, float] = defaultdict(float)
        pair: dict[tuple[str, str], float] = defaultdict(float)
        initial: dict[str, float] = defaultdict(float)
        final: dict[str, float] = defaultdict(float)
        main = {"zh": ("han",), "ja": ("han", "kana"), "ko": ("hangul", "han")}[lang]
        for word, f in freqs.items():
            if not all(char_class(c) in main for c in word):
                continue
            w = word.translate(self._simplify) if self._simplify else word
            for c in w:
                uni[c] += f
            for a, b in pairwise(w):
                pair[a, b] += f
            initial[w[0]] += f
            final[w[-1]] += f
        total = sum(uni.values())
        init_total = sum(initial.values())
        self._uni = {c: v / total for c, v in uni.items()}
        self._count = dict(uni)
        self._pair = dict(pair)
        self._initial = {c: v / init_total for c, v in initial.items()}
        self._final = dict(final)
        self._floor = min(self._uni.values()) * 0.1
        self._classes = _normalised(_CLASS_TRANSITIONS[lang])
        self._main = main
        punct_total = sum(_PUNCT_SHARE.values())
        self._punct = {c: v / punct_total for c, v in _PUNCT_SHARE.items()}
        if lang == "zh":
            import opencc

            self._s2t = opencc.OpenCC("s2t")
        self._cache: dict[tuple[str, str], float] = {}
        # Simplified forms that are not also traditional characters.
        self._simp_only = frozenset(c for c in self._simplify.values() if len(c) == 1) - {
            chr(k) for k in self._simplify
        }

    def known(self, ch: str) -> bool:
        """Whether the word lists know ch (after simplification)."""
        return ch.translate(self._simplify) in self._uni if self._simplify else ch in self._uni

    def unigram(self, ch: str) -> float:
        """The within-script unigram probability of ch (a floor for unknown characters)."""
        c = ch.translate(self._simplify) if self._simplify else ch
        return self._uni.get(c, self._floor)

    def logp(self, prev: str, ch: str, traditional: bool | None = None) -> float:
        """log P(ch | prev), in nats; traditional says which Chinese script the text is in."""
        key = (prev, ch) if traditional is None else (prev + ("T" if traditional else "S"), ch)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        value = self._logp(prev, ch, traditional)
        if len(self._cache) < 400_000:
            self._cache[key] = value
        return value

    def _logp(self, prev: str, ch: str, traditional: bool | None) -> float:
        pc = char_class(prev) if prev else "punct"
        cc = char_class(ch)
        row = self._classes.get(pc) or self._classes["punct"]
        p_class = row.get(cc, 1e-4)
        if cc in self._main:
            c = ch.translate(self._simplify) if self._simplify else ch
            uni = self._uni.get(c)
            if uni is None:
                p = self._floor
            elif pc in self._main:
                a = prev.translate(self._simplify) if self._simplify else prev
                ca = self._count.get(a)
                if ca:
                    cont = self._pair.get((a, c), 0.0)
                    cross = self._final.get(a, 0.0) * self._initial.get(c, 0.0)
                    p = 0.85 * (cont + cross) / ca + 0.15 * uni
                else:
                    p = uni
            else:
                p = 0.5 * self._initial.get(c, 0.0) + 0.5 * uni
            if self.lang == "zh" and traditional is not None:
                p *= self._script_factor(ch, traditional)
            return math.log(p_class) + math.log(max(p, 1e-12))
        if cc == "punct":
            return math.log(p_class) + math.log(self._punct.get(ch, _OTHER_PUNCT))
        if cc == "latin":
            return math.log(p_class) + math.log(1 / 40)
        if cc == "digit":
            return math.log(p_class) + math.log(1 / 10)
        if cc == "space":
            return math.log(p_class) + math.log(0.9 if ch == " " else 0.02)
        if cc == "kana" and self.lang == "zh":
            return math.log(p_class) + math.log(1 / 150)
        return math.log(p_class) + math.log(1 / 200)

    @lru_cache(maxsize=65536)  # noqa: B019 - models are module singletons
    def _script_factor(self, ch: str, traditional: bool) -> float:
        simplified = ch.translate(self._simplify)
        if traditional:
            # A simplified-only character in traditional text: it has a different traditional
            # form and is not itself one. Characters outside Big5 are also unusual there.
            if self._s2t.convert(ch) != ch:
                return 0.02
            try:
                ch.encode("big5")
            except UnicodeEncodeError:
                return 0.05
            return 1.0
        return 0.02 if simplified != ch else 1.0

    def score(self, text: str, prev: str = "", traditional: bool | None = None) -> float:
        """Sum of log P over text, each character given the one before (prev before the first).

        >>> m = get_model("zh")
        >>> m.score("他稱他們") > m.score("彼Q他們")
        True
        """
        total = 0.0
        for ch in text:
            total += self.logp(prev, ch, traditional)
            prev = ch
        return total


def _normalised(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {k: {c: v / sum(row.values()) for c, v in row.items()} for k, row in table.items()}


_MODELS: dict[str, CharModel] = {}


def get_model(lang: str) -> CharModel:
    """The character model for lang, built on first use and kept for the process's life."""
    model = _MODELS.get(lang)
    if model is None:
        model = _MODELS[lang] = CharModel(lang)
    return model


def is_traditional(text: str) -> bool | None:
    """Which Chinese script text is written in: True traditional, False simplified, None when
    it has too few script-specific characters to tell.

    >>> is_traditional("這個問題很難"), is_traditional("这个问题很难"), is_traditional("中文")
    (True, False, None)
    """
    model = get_model("zh")
    trad = simp = 0
    for ch in text:
        if ch < "\u3400":
            continue
        s = ch.translate(model._simplify)
        if s != ch:
            trad += 1
        elif ch in model._simp_only:
            simp += 1
    if trad + simp < 2:
        return None
    return trad > simp
