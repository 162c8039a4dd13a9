"""Pinyin annotations leaked into Chinese text: `創(chuàng)建者` for `創建者`.

A converter that annotates characters with their reading (or a `<ruby>` element whose markup
was stripped) leaves `字(zì)` in running text. The annotation is recognised only where the
syllables in the parentheses are a valid reading of the Han characters right before them,
according to pypinyin's dictionary with heteronyms allowed. `蘋果(Apple)`, `(第二版)` and
`特斯拉(Tesla)` fail that test and are never touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cache, lru_cache

from textmend_server.cjk.scripts import HAN_RANGES, PINYIN_LETTERS
from textmend_server.edits import Proposal
from textmend_server.policy import Category

_TONE_MARKS = frozenset("āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜńňǹḿ")

# Up to 8 Han characters, then a parenthesised run of lowercase pinyin (tone marks, ü, numbered
# tones, apostrophes and single spaces between syllables).
_RUBY_RE = re.compile(
    rf"([{HAN_RANGES}]{{1,8}})\(([{PINYIN_LETTERS}v][{PINYIN_LETTERS}v1-5]*"
    rf"(?:['\- ]?[{PINYIN_LETTERS}v][{PINYIN_LETTERS}v1-5]*){{0,7}})\)"
)
# Same shape, but without the parenthesis: `cái)` left behind when a slip swallowed the `(`.
_SYLLABLE = rf"[{PINYIN_LETTERS}v][{PINYIN_LETTERS}v1-5]*"
PINYIN_TAIL_RE = re.compile(rf"({_SYLLABLE}(?:['\- ]?{_SYLLABLE}){{0,7}})\)")
# A further annotation right after one: the converter run twice over the same text.
_MORE_RE = re.compile(rf"\(({_SYLLABLE}(?:['\- ]?{_SYLLABLE}){{0,7}})\)")


@lru_cache(maxsize=8192)
def readings(ch: str) -> frozenset[str]:
    """Every spelling of every reading pypinyin knows for ch: tone marks, numbered, toneless.

    >>> sorted(readings("為"))[:4]
    ['wei', 'wei2', 'wei4', 'wèi']
    """
    from pypinyin import Style, pinyin

    out: set[str] = set()
    for style in (Style.TONE, Style.TONE3, Style.NORMAL):
        for r in pinyin(ch, style=style, heteronym=True, errors="ignore")[0:1]:
            for s in r:
                out.add(s)
                if "ü" in s:
                    out.add(s.replace("ü", "v"))
    out.discard(ch)
    return frozenset(out)


@lru_cache(maxsize=8192)
def default_reading(ch: str) -> str:
    """pypinyin's default (most common) tone-marked reading of ch, or '' if it has none."""
    from pypinyin import Style, pinyin

    r = pinyin(ch, style=Style.TONE, heteronym=False, errors="ignore")
    return r[0][0] if r and r[0] else ""


def split_reading(hosts: str, syllables: str) -> bool:
    """Whether syllables spell a reading of each host character in turn.

    Separators (space, apostrophe, hyphen) between syllables are optional.

    >>> split_reading("中國", "zhōngguó"), split_reading("蘋果", "apple")
    (True, False)
    """
    s = syllables
    n = len(hosts)

    @cache
    def ok(i: int, pos: int) -> bool:
        if i == n:
            return pos == len(s)
        if i > 0 and pos < len(s) and s[pos] in "'- ":
            pos += 1
        return any(s.startswith(r, pos) and ok(i + 1, pos + len(r)) for r in readings(hosts[i]))

    return ok(0, 0)


@dataclass(frozen=True, slots=True)
class RubyMatch:
    """A leaked annotation: text[start:end] is `hosts(syllables)`, host kept, rest removed."""

    start: int  # start of the host characters
    host_end: int  # end of the host characters = position of "("
    end: int  # after ")"
    hosts: str
    syllables: str
    toned: bool
    default: bool  # every syllable is pypinyin's default reading of its host


def match_reading(hosts_run: str, syllables: str) -> tuple[str, bool] | None:
    """The shortest tail of hosts_run whose reading syllables spell, and whether that reading
    is pypinyin's default one; None when no tail fits.

    >>> match_reading("公司的創", "chuàng")
    ('創', True)
    >>> match_reading("特斯拉", "tesla") is None
    True
    """
    for k in range(1, len(hosts_run) + 1):
        hosts = hosts_run[-k:]
        if split_reading(hosts, syllables):
            joined = "".join(default_reading(h) for h in hosts)
            plain = syllables.replace(" ", "").replace("'", "").replace("-", "")
            return hosts, joined == plain
    return None


def find_ruby_matches(text: str) -> list[RubyMatch]:
    """All `字(pinyin)` places in text whose syllables are a valid reading of the hosts."""
    out: list[RubyMatch] = []
    for m in _RUBY_RE.finditer(text):
        run, syl = m.group(1), m.group(2)
        if syl.isdigit():
            continue
        fit = match_reading(run, syl)
        if fit is None:
            continue
        hosts, default = fit
        host_end = m.start(2) - 1
        end = m.end()
        # Annotations repeated after the first are leaks of the same hosts: removed with it,
        # so that repairing the result finds nothing more.
        while (more := _MORE_RE.match(text, end)) and split_reading(hosts, more.group(1)):
            end = more.end()
        toned = any(c in _TONE_MARKS for c in syl) or any(c.isdigit() for c in syl)
        out.append(RubyMatch(host_end - len(hosts), host_end, end, hosts, syl, toned, default))
    return out


@dataclass(frozen=True, slots=True)
class Annotated:
    """What a document's own leaked annotations say about the converter that made them: the
    characters it annotates (a byte-level table annotates every in-step occurrence of each)
    and the Han characters that stand bare, which it therefore does not annotate."""

    hosts: frozenset[str]
    bare: frozenset[str]

    def cost(self, ch: str) -> float:
        """The channel cost, in nats, of taking ch for a character the converter annotates:
        nothing for one the document shows annotated, a penalty for one it shows bare, a
        smaller one for a character it does not show at all.

        >>> a = annotated_hosts("老人的姥(lǎo)姥(lǎo)")
        >>> a.cost("姥") > a.cost("奶") > a.cost("老")
        True
        """
        if ch in self.hosts:
            return 0.0
        return UNSEEN_HOST if ch not in self.bare else BARE_HOST


# Channel costs of a character chosen to carry an annotation that the document shows bare
# elsewhere, or does not show at all.
BARE_HOST = math.log(0.02)
UNSEEN_HOST = math.log(0.3)


def annotated_hosts(text: str) -> Annotated | None:
    """The annotation habits text shows: None when it holds no tone-marked leak (no converter
    at work, or none that says which characters it annotates)."""
    hosts = {m.hosts for m in find_ruby_matches(text) if m.toned and len(m.hosts) == 1}
    if not hosts:
        return None
    bare = {
        ch
        for k, ch in enumerate(text)
        if "\u4e00" <= ch <= "\u9fff" and text[k + 1 : k + 2] != "(" and ch not in hosts
    }
    return Annotated(frozenset(hosts), frozenset(bare))


# How sure a removal is, by what the annotation shows. Hand-set with the stage (18da600) and
# never measured per class; what they order is what counts: the default reading of every host
# (0.97) before a valid but less common one (0.9), a toneless reading in a text whose other
# leaks are tone-marked, so the same converter at work (0.75), and a toneless reading alone
# (0.4), which `(ma)` or `(an)` after a character can be by chance: it is only reported. On
# the benchmark's generated documents (`bench/cjk_bench.py --docs 120 --seed 90210`) every
# leak is removed (11,027 and 11,037 annotation spans in the two GBK setups) with no false
# edit from this stage.
CONF_DEFAULT_READING = 0.97
CONF_OTHER_READING = 0.9
CONF_TONELESS_WITH_TONED = 0.75
CONF_TONELESS_ALONE = 0.4


def _numbered(syllables: str) -> bool:
    """Whether syllables write their tones as digits (`qu2`), not as marks (`qú`)."""
    return any(c.isdigit() for c in syllables)


# An annotation inside a tag, in an attribute's value (`<img alt="中国话(zhōng guó huà)">` in
# the W3C's article on ruby), is a gloss its writer typed there: a page whose ruby markup was
# flattened leaks readings into its text, and `<rt>` cannot stand in an attribute. Looked for
# within TAG_REACH characters each side.
IN_A_TAG_REASON = "inside a tag, in an attribute's value: a gloss written there, reported"
TAG_REACH = 300


def in_a_tag(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] stands between a tag's `<` and its `>`.

    >>> in_a_tag('<img alt="中国话(zhōng)">', 10, 19), in_a_tag("<b>中国话(zhōng)</b>", 3, 12)
    (True, False)
    """
    low = max(0, start - TAG_REACH)
    opened = text.rfind("<", low, start)
    if (
        opened < 0
        or text.find(">", opened, start) >= 0
        or not text[opened + 1 : opened + 2].isalpha()
    ):
        return False
    closed = text.find(">", end, end + TAG_REACH)
    return closed >= 0 and text.find("<", end, closed) < 0


def find_ruby_leaks(text: str) -> list[Proposal]:
    """Pinyin annotations `字(zì)` whose syllables are a valid reading of the host characters.

    Tone-marked readings are removed; toneless and numbered ones (`qu2`, typed by hand) only
    when the same text also holds tone-marked leaks (the same converter at work), and are
    reported otherwise.

    >>> [(p.start, p.end, p.replacement) for p in find_ruby_leaks("ChatGPT創(chuàng)建者")]
    [(7, 16, '創')]
    >>> find_ruby_leaks("蘋果(Apple)、特斯拉(Tesla)和(第二版)")
    []
    """
    if "(" not in text:
        return []
    matches = find_ruby_matches(text)
    if not matches:
        return []
    any_toned = any(m.toned for m in matches)
    # Tone marks are what a converter writes; numbered tones (`蘧(qu2)`) are how people type a
    # reading by hand, to help a reader with a rare name in a quoted classic (fortunes-zh's
    # Analects): removed only where the text also holds tone-marked leaks.
    any_marked = any(m.toned and not _numbered(m.syllables) for m in matches)
    out: list[Proposal] = []
    for m in matches:
        if m.toned and _numbered(m.syllables) and not any_marked:
            reason = (
                f"Pronunciation annotation: '({m.syllables})' after '{m.hosts}' is a valid "
                "reading of it in numbered tones, as a person types one: reported"
            )
            conf = CONF_TONELESS_ALONE
            category = Category.RUBY_LEAK
            out.append(Proposal(m.start, m.end, m.hosts, category, reason, conf, flag_only=True))
            continue
        if m.toned:
            conf = CONF_DEFAULT_READING if m.default else CONF_OTHER_READING
            flag = False
            why = "pypinyin's default reading" if m.default else "a valid reading (heteronym)"
        else:
            conf = CONF_TONELESS_WITH_TONED if any_toned else CONF_TONELESS_ALONE
            flag = not any_toned
            why = "a toneless valid reading"
        reason = (
            f"Leaked pronunciation annotation: '({m.syllables})' after '{m.hosts}' is {why} of it"
        )
        if in_a_tag(text, m.start, m.end):
            reason, flag = f"{reason}; {IN_A_TAG_REASON}", True
        out.append(
            Proposal(m.start, m.end, m.hosts, Category.RUBY_LEAK, reason, conf, flag_only=flag)
        )
    return out
