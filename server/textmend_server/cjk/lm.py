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

On top of it, for the repairs that compare candidates, `WordModel` scores characters through a
word lattice over the same list (P(c | the last few characters) as a ratio of prefix
probabilities summed over every cut into listed words, so 狐狸尾巴 beats 宏尾巴), and `Scorer`
mixes the two with a cache of the character pairs the document itself uses outside the spans
under repair (names and terms repeat within a text).
"""

from __future__ import annotations

import gzip
import math
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import cache as _once
from functools import lru_cache
from itertools import pairwise
from types import MappingProxyType

from textmend_server import cache
from textmend_server.cjk.scripts import char_class as _char_class

# Character classes are asked for millions of times in a search: cached.
char_class = lru_cache(maxsize=1 << 16)(_char_class)

# P(class of next | class of previous), per language: in each block the header names the
# language and the classes of the character after, each row the class of the one before.
# Rows need not sum exactly to 1: they are normalised at build time. Kana inside Chinese is
# rare (a name, a borrowed の); the classes no text of the language writes (`_FOREIGN`) and
# private-use characters are what mojibake produces, and are priced accordingly.
#
# Where the values come from: set by hand when the model was written (18da600) and unchanged
# since; no corpus was counted for them, and they are meant to tell the scripts apart, not to
# model any one text. Checked against the benchmark's corpora (`bench/cjk_bench.py`: People's
# Daily for zh, 1.8M characters; hironsan's sentences for ja, 26K; konlpy's for ko, 58K) by
# counting the classes of adjacent characters, against the rows as normalised: every cell of
# 0.3 or more agrees within a factor of two (zh han→han 0.84 set, 0.89 counted; ja han→kana
# 0.45, 0.38; kana→kana 0.60, 0.63; ko hangul→hangul 0.79, 0.66; space→hangul 0.80, 0.82)
# but ko punct→space (0.55 set, 0.17 counted); smaller cells differ by up to five times (ja
# punct→digit 0.03, 0.13; ko latin→punct 0.05, 0.34). The rare cells (kana in zh, the
# foreign classes, private use, other) occur in none of the three corpora, as mojibake does
# not. People's Daily is segmented text without spaces or Latin letters, so the zh latin and
# space cells are the hand-set values alone.
_CLASS_MATRICES = """
zh      han     punct   latin   digit   space   kana
han     0.83    0.14    0.008   0.008   0.006   2e-5
punct   0.75    0.12    0.03    0.03    0.07    2e-5
latin   0.12    0.06    0.76    0.01    0.05    1e-5
digit   0.3     0.15    0.02    0.5     0.03    1e-5
space   0.4     0.1     0.3     0.15    0.05    1e-5

ja      han     kana    punct   latin   digit   space
han     0.45    0.45    0.08    0.005   0.005   0.002
kana    0.3     0.6     0.09    0.004   0.004   0.002
punct   0.45    0.35    0.1     0.03    0.03    0.03
latin   0.08    0.08    0.06    0.72    0.01    0.05
digit   0.3     0.1     0.1     0.02    0.45    0.03
space   0.3     0.2     0.1     0.25    0.1     0.05

ko      hangul  space   punct   han     latin   digit
hangul  0.78    0.15    0.05    0.003   0.005   0.005
space   0.8     0.02    0.05    0.01    0.06    0.06
punct   0.3     0.55    0.1     0.005   0.02    0.02
han     0.3     0.1     0.1     0.5     0.002   0.002
latin   0.15    0.1     0.05    0.001   0.7     0.01
digit   0.3     0.1     0.1     0.001   0.02    0.45
"""
# After any character: a class of another language's script (FOREIGN_P each), a letter or
# symbol no class above holds (OTHER_P), a private-use character (PUA_P).
_FOREIGN = {"zh": ("bopomofo", "hangul"), "ja": ("bopomofo", "hangul"), "ko": ("kana", "bopomofo")}
FOREIGN_P = 1e-6
OTHER_P = 1e-4
PUA_P = 1e-7


def _read_matrices(text: str) -> dict[str, dict[str, dict[str, float]]]:
    """The class matrices above as {language: {class before: {class after: P}}}, each row
    completed with the classes mojibake makes."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for block in text.strip().split("\n\n"):
        header, *rows = block.splitlines()
        lang, *after = header.split()
        rare = {**dict.fromkeys(_FOREIGN[lang], FOREIGN_P), "other": OTHER_P, "pua": PUA_P}
        out[lang] = {
            before: {**dict(zip(after, map(float, values), strict=True)), **rare}
            for before, *values in map(str.split, rows)
        }
    return out


_CLASS_TRANSITIONS = _read_matrices(_CLASS_MATRICES)

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
    "＝": 0.001,
    "％": 0.002,
    "．": 0.005,
    "～": 0.001,
    "－": 0.001,
    "／": 0.001,
    "＋": 0.0005,
    "＆": 0.0003,
    "※": 0.0005,
    "〜": 0.001,
    "=": 0.001,
    "+": 0.0005,
    "&": 0.0003,
}
_OTHER_PUNCT = 2e-7
# Clause and sentence marks: two in a row (`。、`, `，，`) hardly occur in running text.
_CLAUSE_MARKS = frozenset("，。、；：,;:")
# Marks that open a quotation, title or aside.
_OPENING_MARKS = frozenset("“‘「『《（〈【")
# What follows a number in CJK text: units, dates, counters (script knowledge, not any text).
PLAIN_DIGITS = frozenset("0123456789０１２３４５６７８９〇")
AFTER_DIGIT = frozenset(
    "年月日号時时分秒点點万萬亿億元个個人名位次岁歲天倍件项項家条條多余餘届屆周週期度米克里"
    "台臺輛辆枚部張张本篇所座户戶株頁页章节節級级つ回円歳万"
)

# Bytes an entry of each of the models' memos holds (key, value and the dict's slot),
# estimated as `slip.candidates.ENTRY_BYTES_ALL` are; `cache` counts them against the
# process's one budget.
ENTRY_BYTES_LOGP = 250
ENTRY_BYTES_SCORER = 120
# A `CharModel.context_part`: a key like logp's, a tuple of two floats and the simplified
# character (`sys.getsizeof` of each).
ENTRY_BYTES_CONTEXT_PART = 350
# A scorer's `_History` of one history: key, object, forward sums and the history's simplified
# form (`sys.getsizeof` of each, for a four-character Chinese history).
ENTRY_BYTES_HISTORY = 560
# Of what a scorer's memo may hold, the share its histories may (a heavily damaged 5 KB
# document reaches about 2,300 histories against 14,000 memo entries).
HISTORY_SHARE = 8
# A scorer's own memo of lp values: at most a quarter of the process's cache budget, and never
# more than the million entries it was capped at before the budget existed.
SCORER_MEMO_SHARE = 4
SCORER_MEMO_MAX = 1_000_000

# How many within-word successors of a character the repair search considers.
SUCCESSORS = 40

_LANG_LIST = {"zh": "large", "ja": "large", "ko": "small"}
# The classes of each language's own scripts: what its word list counts, character by character.
MAIN_CLASSES = {"zh": ("han",), "ja": ("han", "kana"), "ko": ("hangul", "han")}


def shared_values(items: Iterable[tuple[str, float]]) -> dict[str, float]:
    """A table of items in which equal values are one object.

    Why: reading a value from a dict writes its reference count, so a forked worker copies
    every page of the parent's that holds a value it reads (issue 16: the zh tables' floats
    were 19 MiB of each worker's copied pages). The word lists' frequencies repeat (wordfreq
    stores them in centibels): the 353,000 prefix masses of Chinese are 42,000 values, its
    240,000 character pairs 54,000, so one object per value keeps the pages a worker writes few.
    The values are the same floats: nothing computed from them changes.
    """
    pool: dict[float, float] = {}
    return {key: pool.setdefault(value, value) for key, value in items}


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
        # The same mapping by character, for `simplified` of one character: exactly what
        # translating it gives (3,275 entries for Chinese, 0.6 MB by tracemalloc; empty otherwise).
        self._simplify_char = {chr(k): chr(k).translate(self._simplify) for k in self._simplify}
        freqs = wordfreq.get_frequency_dict(lang, wordlist=_LANG_LIST[lang])
        uni: dict[str, float] = defaultdict(float)
        # Pairs keyed by the two-character string: a third of the memory of a tuple of two
        # one-character strings (a quarter of a million pairs for Chinese).
        pair: dict[str, float] = defaultdict(float)
        initial: dict[str, float] = defaultdict(float)
        final: dict[str, float] = defaultdict(float)
        main = MAIN_CLASSES[lang]
        for word, f in freqs.items():
            if not all(char_class(c) in main for c in word):
                continue
            w = self.simplified(word)
            for c in w:
                uni[c] += f
            for a, b in pairwise(w):
                pair[a + b] += f
            initial[w[0]] += f
            final[w[-1]] += f
        total = sum(uni.values())
        init_total = sum(initial.values())
        self._uni = shared_values((c, v / total) for c, v in uni.items())
        self._count = shared_values(uni.items())
        self._pair = shared_values(pair.items())
        self._initial = shared_values((c, v / init_total) for c, v in initial.items())
        self._final = shared_values(final.items())
        self._floor = min(self._uni.values()) * 0.1
        self._classes = _normalised(_CLASS_TRANSITIONS[lang])
        self._main = main
        punct_total = sum(_PUNCT_SHARE.values())
        self._punct = {c: v / punct_total for c, v in _PUNCT_SHARE.items()}
        if lang == "zh":
            import opencc

            self._s2t = opencc.OpenCC("s2t")
        self._cache = cache.Memo(f"lm.logp.{lang}", entry_bytes=ENTRY_BYTES_LOGP)
        self._parts = cache.Memo(f"lm.context_part.{lang}", entry_bytes=ENTRY_BYTES_CONTEXT_PART)
        self._words: WordModel | None = None
        self._succ: dict[str, tuple[str, ...]] | None = None
        # Simplified forms that traditional text writes otherwise: not 出, 只, 家 (the simplified
        # form of 齣, 隻, 傢, and in both scripts the everyday character), which OpenCC's
        # simplified-to-traditional conversion leaves as they are.
        self._simp_only = frozenset(
            c
            for c in self._simplify.values()
            if len(c) == 1 and ord(c) not in self._simplify and self._s2t.convert(c) != c
        )

    def simplified(self, text: str) -> str:
        """text as the model counts it: traditional characters in wordfreq's simplified forms
        for Chinese (its word lists are simplified), text itself for Japanese and Korean."""
        if len(text) == 1:
            # One character (what the searches ask, millions of times): a lookup, not a
            # translation building a new string.
            return self._simplify_char.get(text, text)
        return text.translate(self._simplify) if self._simplify else text

    @property
    def simplify_table(self) -> Mapping[int, str]:
        """The traditional→simplified mapping `simplified` applies (code point → simplified
        form; empty but for Chinese), read-only."""
        return MappingProxyType(self._simplify)

    @property
    def main_classes(self) -> tuple[str, ...]:
        """The character classes of the language's own scripts (`MAIN_CLASSES`)."""
        return self._main

    @property
    def floor(self) -> float:
        """The probability given a character the word lists do not know: a tenth of the
        rarest one they do."""
        return self._floor

    def frequencies(self) -> Mapping[str, float]:
        """The within-script unigram probability of each character the word lists know
        (simplified forms for Chinese), read-only."""
        return MappingProxyType(self._uni)

    def is_simplified_only(self, ch: str) -> bool:
        """Whether ch is a simplified form traditional text writes otherwise (not 出 or 只,
        which both scripts write)."""
        return ch in self._simp_only

    def known(self, ch: str) -> bool:
        """Whether the word lists know ch (after simplification)."""
        return self.simplified(ch) in self._uni

    def unigram(self, ch: str) -> float:
        """The within-script unigram probability of ch (a floor for unknown characters)."""
        return self._uni.get(self.simplified(ch), self._floor)

    def logp(self, prev: str, ch: str, traditional: bool | None = None) -> float:
        """log P(ch | prev), in nats; traditional says which Chinese script the text is in."""
        # The script as the key's third part, not appended to prev: a new string would be
        # built and hashed on every call, hit or miss.
        key = (prev, ch, traditional)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        return self._cache.put(key, self._logp(prev, ch, traditional))

    def context_part(
        self, prev: str, ch: str, traditional: bool | None
    ) -> tuple[float, float | None, str | None]:
        """What the contextual scorer (`Scorer`) needs of the bigram of ch after prev: (logp
        without its within-script part, that part P(ch | prev), ch as the word list spells
        it), or (logp, None, None) for a character outside the language's scripts; memoised
        (every document's scorer asks for the same pairs)."""
        key = (prev, ch, traditional)
        hit = self._parts.get(key)
        if hit is not None:
            return hit
        base = self.logp(prev, ch, traditional)
        if char_class(ch) not in self._main:
            return self._parts.put(key, (base, None, None))
        p_bi = self._main_p(prev, char_class(prev) if prev else "punct", ch)
        rest = base - math.log(max(p_bi, 1e-12))
        return self._parts.put(key, (rest, p_bi, self.simplified(ch)))

    def rank(
        self, prev: str, options: Iterable[tuple[str, int]], traditional: bool | None = None
    ) -> list[tuple[str, int]]:
        """options (character, tag) by the bigram log P(character | prev), best first."""
        memo, logp = self._cache, self.logp

        def bigram(o: tuple[str, int]) -> float:
            # `logp`, its memo read here: a shortlist ranks hundreds of options at once.
            hit = memo.get((prev, o[0], traditional))
            return logp(prev, o[0], traditional) if hit is None else hit

        return sorted(options, key=bigram, reverse=True)

    def _logp(self, prev: str, ch: str, traditional: bool | None) -> float:
        pc = char_class(prev) if prev else "punct"
        cc = char_class(ch)
        row = self._classes.get(pc) or self._classes["punct"]
        p_class = row.get(cc, 1e-4)
        if cc in self._main:
            p = self._main_p(prev, pc, ch)
            if pc == "digit" and ch in AFTER_DIGIT:
                p = 0.5 * p + 0.5 / len(AFTER_DIGIT)
            if self.lang == "zh" and traditional is not None:
                p *= self._script_factor(ch, traditional)
            return math.log(p_class) + math.log(max(p, 1e-12))
        if cc == "punct":
            share = self._punct.get(ch, _OTHER_PUNCT)
            if prev in _CLAUSE_MARKS and ch in _CLAUSE_MARKS:
                share *= 0.01
            elif prev in _OPENING_MARKS and ch in _CLAUSE_MARKS:
                share *= 0.001  # `“，` does not occur: a quotation opens on its words
            return math.log(p_class) + math.log(share)
        if cc == "latin":
            return math.log(p_class) + math.log(1 / 40)
        if cc == "digit":
            # Circled, parenthesised and other numeric signs are digits to Unicode, but rare.
            return math.log(p_class) + math.log(1 / 10 if ch in PLAIN_DIGITS else 1e-4)
        if cc == "space":
            return math.log(p_class) + math.log(0.9 if ch == " " else 0.02)
        if cc == "kana" and self.lang == "zh":
            return math.log(p_class) + math.log(1 / 150)
        return math.log(p_class) + math.log(1 / 200)

    def _main_p(self, prev: str, pc: str, ch: str) -> float:
        """P(ch | prev) within the language's own scripts (the class transition aside)."""
        c = self.simplified(ch)
        uni = self._uni.get(c)
        if uni is None:
            return self._floor
        if pc in self._main:
            a = self.simplified(prev)
            ca = self._count.get(a)
            if ca:
                cont = self._pair.get(a + c, 0.0) if len(a) == 1 == len(c) else 0.0
                cross = self._final.get(a, 0.0) * self._initial.get(c, 0.0)
                return 0.85 * (cont + cross) / ca + 0.15 * uni
            return uni
        return 0.5 * self._initial.get(c, 0.0) + 0.5 * uni

    def successors(self, prev: str) -> tuple[str, ...]:
        """The characters the word list has right after prev inside a word, most frequent
        first (simplified forms for Chinese); built on first use (`warm`)."""
        succ = self._succ
        if succ is None:
            grouped: dict[str, list[tuple[float, str]]] = defaultdict(list)
            # One object per character, not one per pair it ends: the search iterates these
            # tuples, which writes each character's reference count (see `shared_values`).
            chars: dict[str, str] = {}
            for ab, f in self._pair.items():
                a, b = ab[0], ab[1:]
                grouped[a].append((f, chars.setdefault(b, b)))
            succ = self._succ = {
                a: tuple(b for _, b in sorted(v, reverse=True)[:SUCCESSORS])
                for a, v in grouped.items()
            }
        return succ.get(self.simplified(prev), ())

    def warm(self) -> None:
        """Build now what is otherwise built on first use (the successors and the word model),
        so that a server builds it once, before forking its workers."""
        self.successors("")
        self.words()

    def words(self) -> WordModel:
        """The word-lattice model over the same word list, built on first use."""
        wm = self._words
        if wm is None:
            wm = self._words = WordModel(self)
        return wm

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


@_once
def get_model(lang: str) -> CharModel:
    """The character model for lang, built on first use and kept for the process's life."""
    return CharModel(lang)


def release_word_lists() -> None:
    """Drop wordfreq's cached frequency lists (about 35 MB for zh, ja and ko) once the models
    are built: the models keep what they need, and nothing else here reads the lists."""
    import wordfreq

    for name in ("get_frequency_dict", "get_frequency_list"):
        clear = getattr(getattr(wordfreq, name, None), "cache_clear", None)
        if clear is not None:
            clear()


def is_traditional(text: str) -> bool | None:
    """Which Chinese script text is written in: True traditional, False simplified, None when
    it has too few script-specific characters to tell.

    >>> is_traditional("這個問題很難"), is_traditional("这个问题很难"), is_traditional("中文")
    (True, False, None)
    >>> is_traditional("這家公司只出了一本書")  # 只 and 出 are traditional characters too
    True
    """
    model = get_model("zh")
    trad = simp = 0
    for ch in text:
        if ch < "\u3400":
            continue
        if model.simplified(ch) != ch:
            trad += 1
        elif model.is_simplified_only(ch):
            simp += 1
    if trad + simp < 2:
        return None
    return trad > simp


class WordModel:
    """A word-lattice model over the same word list: the probability of a string is summed over
    every way of cutting it into listed words (a unigram word model), and the probability of a
    character given the few before it is the ratio of prefix probabilities,

        P(c | h) = Prefix(h + c) / Prefix(h),

    where Prefix(s) sums, over the cuts of s, the complete words and the mass of the listed
    words the last piece begins. It knows that 狐狸 is a word and 宏 alone is not as likely
    after 。, which character bigrams cannot see. Histories are the last `HIST` characters of
    the language's own scripts; a scorer works out what a history needs once (`forward`) and
    weighs each character after it with a few lookups (`after`).

    >>> wm = get_model("zh").words()
    >>> wm.cond("狐", "狸") > 100 * wm.cond("狐", "宏")
    True
    """

    MAXLEN = 5
    HIST = 4

    def __init__(self, cm: CharModel) -> None:
        import wordfreq

        freqs = wordfreq.get_frequency_dict(cm.lang, wordlist=_LANG_LIST[cm.lang])
        words: dict[str, float] = defaultdict(float)
        for word, f in freqs.items():
            if len(word) > self.MAXLEN or not all(char_class(c) in cm.main_classes for c in word):
                continue
            words[cm.simplified(word)] += f
        # Every known character may stand alone as a word, a little.
        for c, u in cm.frequencies().items():
            words[c] += 0.1 * u
        total = sum(words.values())
        mass: dict[str, float] = defaultdict(float)
        for w, f in words.items():
            for k in range(1, len(w) + 1):
                mass[w[:k]] += f / total
        self._word = shared_values((w, f / total) for w, f in words.items())
        self._mass = shared_values(mass.items())
        self._floor = cm.floor

    def forward(self, s: str) -> list[float]:
        """fwd[e]: the probability of s[:e] cut into complete words, for e in 0..len(s).

        Why: Prefix(s + c) needs only s's sums and the masses of s's tails followed by c, so
        a search that weighs many characters after one history computes these once (`after`).
        """
        word, floor, maxlen = self._word, self._floor, self.MAXLEN
        n = len(s)
        fwd = [1.0] + [0.0] * n
        for e in range(1, n + 1):
            tot = 0.0
            for j in range(max(0, e - maxlen), e):
                if fwd[j]:
                    pw = word.get(s[j:e])
                    if pw is None and e - j == 1:
                        pw = floor
                    if pw:
                        tot += fwd[j] * pw
            fwd[e] = tot
        return fwd

    def after(self, s: str, fwd: Sequence[float], c: str) -> float:
        """Prefix(s + c), given `forward(s)`: the cuts of s, each with the listed words its
        last piece and c begin."""
        n = len(s) + 1
        return self.after_cuts(s, fwd, [j for j in range(max(0, n - self.MAXLEN), n) if fwd[j]], c)

    def cuts(self, s: str, fwd: Sequence[float]) -> tuple[int, ...]:
        """The cuts j of s that `after(s, fwd, c)` can add anything at, whatever c is: fwd[j]
        is not zero, and s[j:] is empty (c alone) or begins a listed word. Every word that
        s[j:] + c begins, s[j:] begins as well, so the other cuts add nothing for any c."""
        mass = self._mass
        last = len(s)
        out = []
        for j in range(max(0, last + 1 - self.MAXLEN), last):
            if fwd[j] and s[j:] in mass:
                out.append(j)
        if fwd[last]:
            out.append(last)
        return tuple(out)

    def after_cuts(self, s: str, fwd: Sequence[float], cuts: Iterable[int], c: str) -> float:
        """`after(s, fwd, c)` at the given `cuts(s, fwd)` alone: the same terms, added in the
        same order, so the same float; the scorer weighs many characters after one history."""
        mass, floor = self._mass, self._floor
        t = s + c
        n = len(t)
        pre = 0.0
        for j in cuts:
            m = mass.get(t[j:])
            if m is None and n - j == 1:
                m = floor
            if m:
                pre += fwd[j] * m
        return pre

    def prefix(self, s: str) -> float:
        """Prefix(s); 1 for the empty string (every cut begins there)."""
        return self.after(s[:-1], self.forward(s[:-1]), s[-1]) if s else 1.0

    def cond(self, hist: str, c: str) -> float:
        """P(c | hist) under the word lattice; hist and c already simplified."""
        below = self.prefix(hist)
        return self.after(hist, self.forward(hist), c) / below if below > 0 else self._floor


# Weight of the word lattice against the character bigrams, and of the document's own
# character pairs (names and terms repeat within a text).
WORD_WEIGHT = 0.6
CACHE_WEIGHT = 0.3


# The row of a history nothing was scored after yet (never written to).
_NO_ROW: dict[str, float] = {}

# What `Scorer._contextual` needs of a character ch after the character prev, whatever came
# before prev: (the bigram log-probability without its within-script part, that part, ch as
# the word list spells it, how often the document has prev ch), or (the bigram
# log-probability, None, None, 0) for a character outside the language's scripts, which the
# word lattice and the document's pairs do not score.
_PairPart = tuple[float, float | None, str | None, int]
# Bytes one `_PairPart` holds in its row (the tuple, a float, and the row's slot: the
# character and the document's count are shared objects).
ENTRY_BYTES_PAIR_PART = 160
# Of what a scorer's memo may hold, the share its pair parts may.
PAIR_PART_SHARE = 8


class _History:
    """What scoring any character after one history needs, worked out once for all of them:
    the searches weigh tens of characters after each history they reach.

    A character's lp after a history depends on the history only through its last character
    (prev) and its run in the language's own scripts as the word list spells it (h): one
    `_History`, and its `row` of lp values, serves every history with the same two
    (`Scorer._history`), as `。他們說` and `，他们说` share theirs."""

    __slots__ = ("below", "cuts", "fwd", "h", "pairs", "prev", "row", "seen")

    def __init__(
        self,
        model: CharModel,
        prev: str,
        h: str,
        firsts: Mapping[str, int],
        pairs: dict[str, _PairPart],
    ) -> None:
        self.prev = prev
        self.h = h
        words = model.words()
        self.fwd = words.forward(h)
        # Prefix(h): forward(h) begins with forward(h[:-1]).
        self.below = words.after(h[:-1], self.fwd, h[-1]) if h else 1.0
        # Where a character after h can end a word or begin one (`WordModel.cuts`).
        self.cuts = words.cuts(h, self.fwd)
        self.seen = firsts.get(prev, 0)
        # The scorer's `_PairPart`s after prev (shared by every history ending in it).
        self.pairs = pairs
        # lp of each character after the history (the scorer's memo row of each history
        # this one serves).
        self.row: dict[str, float] = {}


class Scorer:
    """Scores characters in context for one text: the character model, the word lattice and a
    cache of the character pairs the text itself uses outside the spans under repair. A plain
    scorer uses the character bigrams alone (the cheap first look).

    >>> s = Scorer(get_model("zh"), False)
    >>> s.score("狐狸尾巴", "。") > s.score("宏尾巴", "。")
    True
    """

    def __init__(
        self,
        model: CharModel,
        traditional: bool | None,
        doc: str = "",
        exclude: list[tuple[int, int]] | None = None,
        plain: bool = False,
    ) -> None:
        self.model = model
        self.trad = traditional
        self.plain = plain
        self.words = model.words() if not plain else None
        # lp's values by history, then character: a search scores many characters after one
        # history, and reads the history's row once for all of them (`top`).
        self._memo: dict[str, dict[str, float]] = {}
        self._memo_size = 0
        # The memo is the scorer's own (one document's searches), not a process memo: it may
        # take up to SCORER_MEMO_SHARE of the process's cache budget while the scorer lives.
        self._memo_cap = min(
            SCORER_MEMO_MAX, cache.budget_bytes() // SCORER_MEMO_SHARE // ENTRY_BYTES_SCORER
        )
        # Results callers derive from this scorer's probabilities alone, keyed by what they
        # depend on (the slip search's guess of a swallowed byte); they live as long as it.
        self.derived: dict[tuple[str, ...], tuple[str, float]] = {}
        pairs: dict[tuple[str, str], int] = defaultdict(int)
        firsts: dict[str, int] = defaultdict(int)
        if doc:
            keep = []
            last = 0
            for a, b in sorted(exclude or []):
                if a > last:
                    keep.append(doc[last:a])
                last = max(last, b)
            keep.append(doc[last:])
            for piece in keep:
                for a, b in pairwise(piece):
                    if a >= "\u3400" and b >= "\u3400":
                        pairs[a, b] += 1
                        firsts[a] += 1
        self._pairs = dict(pairs)
        self._firsts = dict(firsts)
        # Each history's `_History`, within a share of what the memo may hold: by the
        # history, and by its last character and run (`_History`, `_history`).
        self._hists: dict[str, _History] = {}
        self._runs: dict[str, _History] = {}
        self._hists_cap = (
            self._memo_cap * ENTRY_BYTES_SCORER // ENTRY_BYTES_HISTORY // HISTORY_SHARE
        )
        # Each (prev, ch)'s `_PairPart`, by prev then ch, within a share of what the memo may
        # hold: every history that ends in prev weighs ch with the same bigram part, and a
        # search reaches tens of histories ending in each character.
        self._pair_parts: dict[str, dict[str, _PairPart]] = {}
        self._pair_parts_size = 0
        self._pair_parts_cap = (
            self._memo_cap * ENTRY_BYTES_SCORER // ENTRY_BYTES_PAIR_PART // PAIR_PART_SHARE
        )

    def top(
        self, hist: str, options: Iterable[tuple[str, int]], k: int
    ) -> list[tuple[float, str, int]]:
        """The k best of options (character, tag) after hist, as (lp, character, tag), best
        first: the searches' inner loop, kept here with the scoring it runs."""
        row = self._memo.get(hist[-1:] if self.plain else hist, _NO_ROW)
        lp = self.lp
        got = [(row[ch] if ch in row else lp(hist, ch), ch, t) for ch, t in options]
        got.sort(reverse=True)
        return got[:k]

    def lp(self, hist: str, ch: str) -> float:
        """log P(ch | the characters before it), in nats."""
        if self.plain:
            # The bigrams alone: only the last character of the history counts.
            hist = hist[-1:]
        row = self._memo.get(hist)
        if row is not None:
            hit = row.get(ch)
            if hit is not None:
                return hit
        if self.plain:
            rest = self.model.logp(hist, ch, self.trad)
            if self._memo_size < self._memo_cap:
                if row is None:
                    row = self._memo[hist] = {}
                row[ch] = rest
                self._memo_size += 1
            return rest
        at = self._history(hist)
        shared = at.row
        rest = shared.get(ch)
        if rest is None:
            rest = self._contextual(at, ch)
            if self._memo_size < self._memo_cap:
                shared[ch] = rest
                self._memo_size += 1
        if row is None and self._memo_size < self._memo_cap:
            # This history reads its values in the row of the histories like it.
            self._memo[hist] = shared
        return rest

    def _history(self, hist: str) -> _History:
        """The `_History` of hist: the one of the histories with its last character and its
        run, made on first use; the histories are kept within their cap (both the keys and
        the shared objects count against it)."""
        at = self._hists.get(hist)
        if at is not None:
            return at
        m = self.model
        main = m.main_classes
        k = len(hist)
        while k > 0 and char_class(hist[k - 1]) in main:
            k -= 1
        # The history's run in the language's own scripts, as the word list spells it.
        prev, h = hist[-1:], m.simplified(hist[k:])
        # prev is one character or none (and then h is empty): prev + h names the pair.
        key = prev + h
        at = self._runs.get(key)
        room = len(self._hists) + len(self._runs) < self._hists_cap
        if at is None:
            pairs = self._pair_parts.get(prev)
            if pairs is None:
                pairs = self._pair_parts[prev] = {}
            at = _History(m, prev, h, self._firsts, pairs)
            if room:
                self._runs[key] = at
        if room:
            self._hists[hist] = at
        return at

    def _contextual(self, at: _History, ch: str) -> float:
        """lp after at with the word lattice and the document's own character pairs."""
        part = at.pairs.get(ch)
        if part is None:
            part = self._pair_part(at, ch)
        rest, p_bi, c, n = part
        if c is None:
            return rest
        m = self.model
        words = self.words
        cond = words.after_cuts(at.h, at.fwd, at.cuts, c) / at.below if at.below > 0 else m.floor
        p = WORD_WEIGHT * cond + (1 - WORD_WEIGHT) * p_bi
        if at.seen:
            mu = CACHE_WEIGHT * at.seen / (at.seen + 1)
            p = (1 - mu) * p + mu * n / at.seen
        return rest + math.log(max(p, 1e-12))

    def _pair_part(self, at: _History, ch: str) -> _PairPart:
        """The `_PairPart` of ch after at's last character, remembered in at's row while the
        scorer's pair parts are within their cap."""
        rest, p_bi, c = self.model.context_part(at.prev, ch, self.trad)
        part: _PairPart = (rest, p_bi, c, self._pairs.get((at.prev, ch), 0) if c is not None else 0)
        if self._pair_parts_size < self._pair_parts_cap:
            at.pairs[ch] = part
            self._pair_parts_size += 1
        return part

    def score(self, text: str, left: str = "") -> float:
        """Sum of log P over text, left being the text before it."""
        total = 0.0
        hist = left[-WordModel.HIST :]
        for ch in text:
            total += self.lp(hist, ch)
            hist = (hist + ch)[-WordModel.HIST :]
        return total
