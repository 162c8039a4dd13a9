"""The phase-slip stage: where in a text to search for byte-phase slips, and what to do with
what the search finds.

`find_phase_slips` finds the `?` that could open a slip (`context.candidate_positions`), keeps
those a slip could follow and that are followed by something improbable, lets go those after
text that reads as noise (`context.reads_as_noise`; for the first triggers of a line, with too
little before them to tell, the stretch of the line around them, `stretch_reads_as_noise`),
and searches each (`search.repair_at`) in the codecs of the text's language: first with the
character bigrams alone, then, where that looks promising, with the full model. A reading
clearly better than the text as it stands is applied; a weaker one, a search cut short, a
reading that invents characters, or a lone unsure repair in long clean text is reported, not
edited. What the searches may spend is the caller's `SearchBudget` (`cjk.budget`).
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from itertools import islice

from textmend_server.cjk.budget import DEFAULT_BUDGET, SearchBudget, Work, exhausted_finding, starve
from textmend_server.cjk.dbcs import codec
from textmend_server.cjk.lm import Scorer, get_model, is_traditional
from textmend_server.cjk.ruby import Annotated, annotated_hosts
from textmend_server.cjk.scripts import CJK_ANY, text_language
from textmend_server.cjk.slip.context import (
    LEFT_EVIDENCE_REACH,
    NOISE_REACH,
    candidate_positions,
    left_evidence,
    looks_improbable,
    reads_as_noise,
    stretch_of,
    stretch_reads_as_noise,
)
from textmend_server.cjk.slip.search import EDIT_MARGIN, FLAG_MARGIN, MAX_GAP, SlipRepair, repair_at
from textmend_server.edits import Proposal
from textmend_server.errors import check_cancelled
from textmend_server.markup import in_code_span
from textmend_server.policy import Category

# The bigram-only first look must come within this many nats of the text as it stands (or
# better) for the full search to run.
QUICK_MARGIN = 4.0
_CODEC_NAMES = {"gbk": "GBK", "big5": "Big5", "shift_jis": "Shift-JIS", "euc_kr": "EUC-KR"}
_LANG_NAMES = {"zh": "Chinese", "ja": "Japanese", "ko": "Korean"}
_CODECS_FOR = {"zh": ("gbk", "big5"), "ja": ("shift_jis",), "ko": ("euc_kr",)}

# The chance that a re-phased reading is exactly right, as a logistic function of its gap over
# the next-best reading (nats, capped at 20), the log of its length, its margin over the text
# as it stands per character (capped at 20) and the log of one plus the characters whose pair
# was lost whole (`SlipRepair.lost`: the model alone chose them), with weights per codec.
# GBK's are fitted to the readings with the margin to edit on generated GBK slips
# (`bench/calibrate.py --fit-seeds 7,11,13 --docs 30`). On seeds 17, 19 and 90210 the lost
# pairs cut the log-loss from 0.484 to 0.472; of the 695 readings there, the floor below (0.4)
# lets 519 through, 127 of them wrong, where the fit without them let 532 through, 134 wrong.
# Big5's and Shift-JIS's are fitted the same way on their own generated slips (`--docs 60`;
# 404 and 223 readings with no pair lost, so the lost pairs keep GBK's weight: too few of
# their readings lose one to fit it). On seeds 17 and 19 they take the log-loss from 0.400
# to 0.383 (Big5, 273 readings) and from 0.326 to 0.243 (Shift-JIS, 162), where GBK's weights
# rated one-character readings with a small gap 0.9 and more: at a floor of 0.9, Big5 lets
# 159 readings through, 11 wrong, against 206, 21 wrong; Shift-JIS 134, 6 wrong, against 152,
# 13 wrong. EUC-KR keeps GBK's (no corpus of its slips).
# The margin and gap alone (the first version) said 0.96 for repairs right 67% of the time: a
# long run has more characters to get wrong. Both nat features were capped at _CONF_CAP in the
# fit (the gap a reading with no rival gets, `search.MAX_GAP`), and the result is kept within
# _CONF_FLOOR.._CONF_CEILING: no reading is certain either way.


@dataclass(frozen=True, slots=True)
class _Weights:
    """The logistic weights of `confidence`, in the order `bench/calibrate.py` prints them."""

    bias: float
    gap: float
    log_length: float
    margin_per_char: float
    log_lost: float


_GBK_WEIGHTS = _Weights(1.5307, 0.13, -0.9052, 0.0836, -1.0554)
_WEIGHTS = {
    "gbk": _GBK_WEIGHTS,
    "big5": _Weights(-0.3807, 0.5457, -1.4603, 0.0847, _GBK_WEIGHTS.log_lost),
    "shift_jis": _Weights(-0.6394, 0.7406, 0.7563, 0.0458, _GBK_WEIGHTS.log_lost),
}
_CONF_CAP = MAX_GAP
_CONF_FLOOR = 0.01
_CONF_CEILING = 0.99


# A re-phased reading rated less likely than this to be exactly right is reported with the
# reading as its suggestion, not applied: the evidence is weak. Chosen on seeds 7 and 11 of
# `bench/cjk_bench.py`'s GBK setups (20 documents each; spans restored exactly / rewritten
# wrongly, simplified of 201 and traditional of 108): no floor 103/77 and 83/23; 0.2 101/64
# and 83/23; 0.3 97/57 and 82/23; 0.4 89/45 and 82/19; 0.45 82/39 (simplified). Up to 0.4
# each restored span given up keeps one and a half to two wrong rewrites out; past it, one.
MIN_EDIT_CONFIDENCE = 0.4

# A re-phased reading the next-best reading of the same bytes trails by less than this many
# nats is reported with the reading as its suggestion, not applied, however it is rated: the
# bytes allow both about equally and the character model alone chose (most often the character
# whose lead byte the cut took, `打麥?錾系` read `打麥遇上的` for `打麥場上的`). Chosen the way
# `MIN_EDIT_CONFIDENCE` was, on the readings the floor lets through on tuning seeds 7, 11 and 13
# of `bench/calibrate.py` (30 documents; GBK, Big5 and Shift-JIS pooled, right / wrong given
# up at each step): 0 to 0.5 nats 14 / 24, 0.5 to 1 21 / 21, 1 to 1.5 20 / 18, 1.5 to 2
# 32 / 19. Below half a nat each right reading given up keeps 1.7 wrong ones out; from there
# to one nat, one for one, where the reading stays: the sample article's `?!彼Q` standing
# alone (`。”他稱` over `。”他綫`) is 0.7 nats clear.
MIN_EDIT_GAP = 0.5


def confidence(margin: float, gap: float, length: int, lost: int = 0, codec: str = "gbk") -> float:
    """How likely a re-phased reading of length characters is to be exactly right, from its
    margin over the text as it stands and its gap over the next-best reading (both in nats),
    how many of its characters had their pair lost whole, and the codec it was read in.

    >>> confidence(60.0, 20.0, 3) > confidence(60.0, 2.0, 3) > confidence(60.0, 2.0, 30)
    True
    >>> confidence(60.0, 2.0, 3) > confidence(60.0, 2.0, 3, lost=2)
    True
    >>> confidence(9.0, 0.5, 1, codec="big5") < 0.9 < confidence(9.0, 0.5, 1)
    True
    """
    w = _WEIGHTS.get(codec, _GBK_WEIGHTS)
    n = max(length, 1)
    x = (
        w.bias
        + w.gap * min(max(gap, 0.0), _CONF_CAP)
        + w.log_length * math.log(n)
        + w.margin_per_char * min(max(margin, 0.0) / n, _CONF_CAP)
        + w.log_lost * math.log1p(lost)
    )
    return round(max(_CONF_FLOOR, min(_CONF_CEILING, 1.0 / (1.0 + math.exp(-x)))), 3)


# How far past its trigger a run may lie, for the document cache (`_suspect_spans`): at most
# the rest of the line, and no more than this many code points (a first-version choice,
# 18da600; the longest damaged span of `bench/cjk_bench.py --docs 120 --seed 90210` runs 85).
SUSPECT_REACH = 120


def _suspect_spans(text: str, positions: list[int]) -> list[tuple[int, int]]:
    """Where runs may lie: from each trigger to the end of its line (at most SUSPECT_REACH
    code points); the document cache of the character model learns only from the rest."""
    out = []
    for i in positions:
        nl = text.find("\n", i)
        out.append((max(0, i - 1), min(nl if nl >= 0 else len(text), i + SUSPECT_REACH)))
    return out


# A decoder that lost phase damages a document wherever that codec's text appears, so real
# slips come several to a page (the sample article has 12 in about 9,000 characters). One
# re-phasing, less than sure, in a long stretch of otherwise clean CJK text is more likely
# text that only looks like a slip (`\*Q??\*U` in a Japanese man page, where `??` is a
# user name): it is reported, not edited. LONE_SLIP_CONTEXT CJK characters make the stretch
# long; below LONE_SLIP_CONFIDENCE the repair is less than sure (the calibration above: 0.8
# and more were right 89% of the time).
LONE_SLIP_CONTEXT = 3000
LONE_SLIP_CONFIDENCE = 0.8
_CJK_LETTER = re.compile(CJK_ANY)


# The double-byte codecs' trail bytes include ASCII's brackets (0x5B, 0x5D, 0x7B, 0x7D), so a
# `?` before one can be a lost lead byte; a bracket that pairs with another on its line is
# markup or code instead (Emacs Lisp `{どれを参照?}`, a regex's `の?[\n ]*`, Info's
# `どこ?[ここはとこ?]`: eight Debian files whose `?` before a bracket was re-phased into a
# kana or kanji).
_BRACKET_PARTNER = {"[": "]", "{": "}", "]": "[", "}": "{"}
# The same holds for the marks plain-text formats put around emphasis, which are trail bytes
# too (0x5F; Info writes `@emph` as `_…_`: `予約してくれませんか?_` in a Japanese Info manual
# was re-phased into `かダ`), and Markdown's `*…*` (`*…써야할까?*` in a Korean notebook, re-phased
# with the escape after it): one with another on its line, before or after it, is markup.
_EMPHASIS = "_*"
# A regular expression's alternation (`(丁目?|番(町|丁)` in a Japanese address normaliser,
# `三十一?|二?十` in a calendar library): `|` is a trail byte too (0x7C). One with another `|`
# on its line, or inside parentheses closed on it, is syntax.
_ALTERNATION = "|"


def pairs_on_its_line(text: str, i: int) -> bool:
    """Whether the character after the `?` at i is a bracket with its partner on the same
    line (an opener closed after it, or a closer opened before it, on its line or the one
    before), an emphasis mark with another on its line, or an alternation's `|` (another on
    its line, or parentheses around).

    >>> pairs_on_its_line("{どれを参照?}", 6), pairs_on_its_line("月の?[ ]*日", 2)
    (True, True)
    >>> pairs_on_its_line("公司?]他們", 2), pairs_on_its_line("一?[", 1)
    (False, False)
    >>> pairs_on_its_line("_誰か予約してくれませんか?_", 13), pairs_on_its_line("公司?_他", 2)
    (True, False)
    >>> pairs_on_its_line("{訳注: ディス\\nク?}", 10), pairs_on_its_line("做什么?*", 3)
    (True, False)
    """
    bracket = text[i + 1 : i + 2]
    # Searched in place, not sliced: a block may be one long line, asked about at every slip.
    start = text.rfind("\n", 0, i) + 1
    end = text.find("\n", i + 2)
    end = len(text) if end < 0 else end
    if bracket and bracket in _EMPHASIS:
        return text.find(bracket, start, i) >= 0 or text.find(bracket, i + 2, end) >= 0
    if bracket == _ALTERNATION:
        other = text.find(bracket, start, i) >= 0 or text.find(bracket, i + 2, end) >= 0
        return other or (text.find("(", start, i) >= 0 and text.find(")", i + 2, end) >= 0)
    partner = _BRACKET_PARTNER.get(bracket)
    if partner is None:
        return False
    if bracket in "[{":
        return text.find(partner, i + 2, end) >= 0
    # A closer's opener may stand on the line before (Vim's help wraps `{訳注: … ディス\nク?}`).
    before = max(text.rfind("\n", 0, max(start - 1, 0)) + 1, start - SYNTAX_REACH, 0)
    return text.find(partner, before, i) >= 0


# The longest line `breaks_a_pair` weighs: a block may be one long line, and a run's
# bracket pairs are a line's, not a page's (a first-version bound, with the rule).
PAIR_LINE_MAX = 4096
_OPENER_OF = {")": "(", "]": "[", "}": "{"}


def _balanced(s: str) -> bool:
    """Whether every ASCII bracket in s is closed, by its own kind, in order."""
    stack: list[str] = []
    for ch in s:
        if ch in "([{":
            stack.append(ch)
        elif ch in _OPENER_OF:
            if not stack or stack.pop() != _OPENER_OF[ch]:
                return False
    return not stack


def breaks_a_pair(text: str, start: int, end: int, replacement: str) -> bool:
    """Whether putting replacement for text[start:end] would unbalance the ASCII brackets of
    its line, which were balanced: the run holds half of a pair, and the pair is code or
    markup (`^字?家[6六]` in a regex re-phased into `^字都要遊6六]`). A damaged line rarely
    balances: the lossy decoder swallows what follows a lost byte, brackets included.

    >>> breaks_a_pair("^字?家[6六]", 2, 5, "都要遊")
    True
    >>> breaks_a_pair("公司?!彼Q他們", 2, 6, "。”他稱")
    False
    """
    if not any(ch in "()[]{}" for ch in text[start:end]):
        return False
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    last = len(text) if last < 0 else last
    if last - first > PAIR_LINE_MAX:
        return False
    line = text[first:last]
    return _balanced(line) and not _balanced(text[first:start] + replacement + text[end:last])


def written_elsewhere(text: str, start: int, end: int) -> bool:
    """Whether the run text[start:end] (a `?` and what follows it) begins, after its `?`, with
    an ASCII letter or digit that the text also writes, with the character after the run,
    somewhere no `?` stands before: a word of the text, not a misread pair. Lu Xun's
    `那裡去呢?S城` (S city, the author's home town, after a question mark folded to ASCII) was
    re-phased into `呢豐城` at 0.92, where the same paragraph writes `為S城人`. A misread pair's
    trail byte is an ASCII letter as often (`彼Q`), but the text it hid is not written again.

    >>> t = "那裡去呢?S城人的臉早經看熟,去尋為S城人所詬病的人們"
    >>> written_elsewhere(t, 4, 6), written_elsewhere("公司?!彼Q他們", 2, 6)
    (True, False)
    """
    probe = text[start + 1 : end + 1]
    if len(probe) < 2 or not probe[0].isascii() or not probe[0].isalnum():
        return False
    at = text.find(probe)
    while at >= 0:
        if at != start + 1 and (at == 0 or text[at - 1] != "?"):
            return True
        at = text.find(probe, at + 1)
    return False


# How far before a `?` on its line the pattern and code-span rules look for the opener of a
# group, a class or a code span: a pattern's group and a Markdown code span are short, and a
# block may be one long line (a first-version bound, with the rules).
SYNTAX_REACH = 200
_OPENER = {")": "(", "]": "["}


# Signs of a regular expression besides a group's quantifier: an alternation, a special
# group, an escaped class, a negated class.
_PATTERN_SIGN = re.compile(r"\||\(\?|\\[dDsSwW]|\[\^")


def quantifies_a_group(text: str, i: int, end: int | None = None) -> bool:
    r"""Whether the `?` at i follows a regular expression's group or class: an escaped closing
    parenthesis or bracket (`\\(?:画像\\)?＞[` in Emacs Lisp, `\)?` in sed and grep patterns),
    or one whose opener stands before it on its line, which also holds another sign of a
    pattern (`_PATTERN_SIGN`) outside the run that ends at end (`(个)?周|(个)?日`,
    `(?=([之以]?前|止)$)` in a Chinese date parser's patterns). The `?` is the pattern's
    quantifier, not a lost lead byte (a Japanese Emacs Lisp file's `\\)?＞[` was re-phased into
    `メЪ`, the date parser's `)?周|` into `又軀`). Without such a sign, `)?` is as often a
    pinyin annotation or a byline before a slip (`望(wàng)?!皣T`; `(記者楊國鈞)?磛噫﹞絞萴|`,
    whose `|` is a trail byte of the damage).

    >>> quantifies_a_group(r"\\(?:画像\\)?＞[", 10), quantifies_a_group("(年|(个)?周|天)", 6)
    (True, True)
    >>> quantifies_a_group("相望(wàng)?!皣T", 8), quantifies_a_group("(記者)?磛﹞萴|行", 4, 9)
    (False, False)
    """
    if i < 1 or text[i - 1] not in _OPENER:
        return False
    if i >= 2 and text[i - 2] == "\\":
        return True
    start = max(text.rfind("\n", 0, i) + 1, i - SYNTAX_REACH)
    if text.rfind(_OPENER[text[i - 1]], start, i - 1) < 0:
        return False
    stop = text.find("\n", i)
    stop = min(len(text) if stop < 0 else stop, i + SYNTAX_REACH)
    run_end = i + 1 if end is None else max(end, i + 1)
    return bool(_PATTERN_SIGN.search(text, start, i) or _PATTERN_SIGN.search(text, run_end, stop))


# What follows `(?` in a regular expression's group: non-capturing `(?:`, look-arounds `(?=`,
# `(?!`, `(?<=`, `(?<!`, named `(?P<`, comments `(?#`; or inline flags closed on the spot
# (`(?i)`, Tcl's `(?n)`, `(?-s:`). The `?` is syntax there.
_GROUP_KINDS = frozenset(":=!<P#")
_INLINE_FLAGS = re.compile(r"[A-Za-z-]{1,6}[):]")


def escaped(text: str, i: int) -> bool:
    r"""Whether the `?` at i is escaped by a backslash: a pattern's literal question mark
    (`[。！？\?!]` in a Chinese sentence splitter, re-phased into `保。沒`).

    >>> escaped(r"([。！？\?!])", 6), escaped("公司?!彼Q", 2)
    (True, False)
    """
    return i >= 1 and text[i - 1] == "\\"


def opens_a_group(text: str, i: int) -> bool:
    r"""Whether the `?` at i opens a regular expression's special group (`(?!\d)` in a
    Traditional Chinese date parser's `/^(一|1(?!\d))/i`, re-phased into `。…運`; Tcl's manual
    page's `或者 (?n) 嵌入選項`, re-phased as Big5 into `(要)`).

    >>> opens_a_group(r"/^(一|1(?!\d))/i", 7), opens_a_group("或者 (?n) 嵌入選項", 4)
    (True, True)
    >>> opens_a_group("公司?!彼Q", 2)
    False
    """
    if i < 1 or text[i - 1] != "(":
        return False
    return text[i + 1 : i + 2] in _GROUP_KINDS or _INLINE_FLAGS.match(text, i + 1) is not None


def in_a_code_span(text: str, i: int) -> bool:
    """Whether the `?` at i stands inside a Markdown code span: an odd number of backticks
    before it on its line and one after it (`２つの疑問符 ``??`` で記述されます` in a
    JavaScript tutorial, whose `??` was re-phased into `中~`; IPython's `??` help operator).
    The backtick (0x60) is a trail byte, so a lost lead byte can leave one, but not a pair
    around the `?`.

    >>> in_a_code_span("使用 `??` 查看函数帮助", 4), in_a_code_span("公司?`他", 2)
    (True, False)
    """
    # Backticks are counted from the line's start, however long its code spans before the `?`
    # (a link to a source file in one), up to PAIR_LINE_MAX characters back.
    return in_code_span(text, i, i + 1, PAIR_LINE_MAX, SYNTAX_REACH)


# What follows a backslash in a string's escape (`\n`, `\t`, `\"`, `\\`, `\u…`, `\x…`) or a
# pattern's class (`\d`, `\s`, `\w`, `\p{…}` and their negations): the backslash is a trail
# byte too (0x5C), so `是否继续?\n"` in a translation catalogue, a JSON string or C source
# re-phased into `是否继续運n` (three catalogues, a JSON file and `<pre>` code among 10,307
# Debian documents), and a Japanese date parser's `/^第?\d+/i` into `第運d+` (date-fns's
# locales), Ruby's `?\s` into `予`.
_ESCAPED = frozenset("nrtabfv0\"'\\uxdDsSwWBpP")


def before_an_escape(text: str, i: int) -> bool:
    r"""Whether the `?` at i, or the run of `?` it begins, stands before a backslash escape, or
    a backslash that ends its line (a continuation): code and catalogues, not a lost lead byte
    (Vim's Korean and Japanese catalogues end questions `닌가??\n`).

    >>> before_an_escape(r'msgstr "是否继续?\n"', 12), before_an_escape("继续?\\", 2)
    (True, True)
    >>> before_an_escape(r"/^第?\d+/i", 3), before_an_escape(r"닌가??\n", 2)
    (True, True)
    >>> before_an_escape(r"公司?\Q他", 2)
    False
    """
    j = i + 1
    while text[j : j + 1] == "?":
        j += 1
    if text[j : j + 1] != "\\":
        return False
    after = text[j + 1 : j + 2]
    return after in ("", "\n", "\r") or after in _ESCAPED


def before_an_underscore(text: str, i: int) -> bool:
    """Whether the `?` at i stands before `_`: web pages title themselves `question?_site`
    (`他是谁?_网易新闻`, re-phased into `他是谁開网易新闻`), and identifiers join words with it.
    `_` (0x5F) is one trail byte of the 190 GBK and Big5 use, so a lost lead byte seldom leaves
    one behind; such a slip is reported, not re-phased.

    >>> before_an_underscore("他是谁?_网易新闻", 3), before_an_underscore("公司?!彼Q", 2)
    (True, False)
    """
    return text[i + 1 : i + 2] == "_"


# Where the text around a `?` is code or markup, not a lost lead byte: each rule, and what the
# reason of the slip it reports says (the repair is then a suggestion, never an edit). Each
# rule is asked about the `?` at i; the one that weighs the rest of its line is also told
# where the run found from it ends.
_SYNTAX: tuple[tuple[Callable[[str, int, int], bool], str], ...] = (
    (lambda t, i, _: pairs_on_its_line(t, i), "the mark after `?` pairs with another on its line"),
    (quantifies_a_group, "`?` quantifies a pattern's group or class"),
    (lambda t, i, _: opens_a_group(t, i), "`?` opens a pattern's group"),
    (lambda t, i, _: escaped(t, i), "`?` is escaped by a backslash"),
    (
        lambda t, i, _: before_an_escape(t, i),
        "a backslash escape follows `?`: code or a catalogue's string",
    ),
    (lambda t, i, _: in_a_code_span(t, i), "`?` stands in a code span"),
    (
        lambda t, i, _: before_an_underscore(t, i),
        "`_` after `?` joins words, as a page title's `question?_site`",
    ),
)


def syntax_at(text: str, i: int, end: int) -> str | None:
    """Why the `?` at i, which starts a run ending at end, is code or markup (`_SYNTAX`), or
    None when nothing says so."""
    for rule, why in _SYNTAX:
        if rule(text, i, end):
            return why
    return None


def _lone_in_clean_text(text: str, proposal: Proposal) -> bool:
    """Whether proposal is a less-than-sure repair alone in a long stretch of CJK text."""
    if proposal.confidence >= LONE_SLIP_CONFIDENCE:
        return False
    return sum(1 for _ in islice(_CJK_LETTER.finditer(text), LONE_SLIP_CONTEXT)) >= (
        LONE_SLIP_CONTEXT
    )


def find_phase_slips(text: str, limits: SearchBudget | None = None) -> list[Proposal]:
    """Runs of double-byte text read one byte out of phase, with their re-phased repair.

    limits is what the searches may spend (`cjk.budget`; the defaults when None). Proposals
    are non-overlapping and sorted by start; where the budget ran out, none is an edit and a
    finding says where (`budget.starve`).

    >>> [(p.start, p.end, p.replacement) for p in find_phase_slips("公司?!彼Q他們的工作")]
    [(2, 6, '。”他稱')]
    >>> find_phase_slips("真的嗎?!我不相信。")
    []
    """
    positions = candidate_positions(text)
    if not positions:
        return []
    positions_set = set(positions)
    lang = text_language(text)
    if lang is None:
        return []
    model = get_model(lang)
    trad = is_traditional(text) if lang == "zh" else None
    has_fullwidth = any("\uff01" <= ch <= "\uff5e" for ch in text)
    out: list[Proposal] = []
    covered = 0
    scorer: Scorer | None = None
    quick: Scorer | None = None
    annotated: Annotated | None = None
    limits = limits or DEFAULT_BUDGET
    # What searches that repair nothing may spend, and what all of them may (`earned_cap`).
    budget = limits.for_call(len(text))
    ceiling = limits.earned_cap * budget
    wasted = 0
    work = Work()
    searches = 0
    starved = False
    applied: list[Proposal] = []
    stretches: dict[tuple[int, int], bool] = {}
    pending = list(positions)  # sorted: a heap already
    while pending:
        i = heapq.heappop(pending)
        if i < covered:
            continue
        # A repair just before the trigger gives it the CJK context it is judged in: in
        # `これは?}?B`, `?B` follows Han only once `?}` reads `マ`. The trigger is judged in
        # the text as it will read, so the engine's next pass finds nothing more to do.
        view, vi = _chained_view(text, i, applied)
        if not left_evidence(view, vi) or not looks_improbable(view, vi, model, trad):
            continue
        noise = reads_as_noise(*_judged_view(text, i, view, vi, out), model, trad)
        if noise is None:
            # Too little before the trigger to judge (the first triggers of a line): the
            # stretch of the line around it is judged, once for all its triggers.
            span = stretch_of(text, i)
            noise = stretches.get(span)
            if noise is None:
                noise = stretches[span] = stretch_reads_as_noise(text, *span, model, trad)
        if noise:
            continue  # no slip starts after text that is not the language: not searched
        if wasted >= budget or work.spent >= ceiling or searches >= limits.max_searches:
            starved = True
            work.starved_at = i
            break
        check_cancelled()  # a block dense with slips takes seconds: stop between searches
        searches += 1
        spent_before = work.spent
        if quick is None:
            quick = Scorer(model, trad, plain=True)
            annotated = annotated_hosts(text) if lang == "zh" else None
        nxt = text[i + 1 : i + 2]
        folded = not has_fullwidth or nxt in ("!", "?")
        best: SlipRepair | None = None
        for name in _CODECS_FOR[lang]:
            if name == "big5" and trad is False:
                continue  # Big5 has no simplified characters: simplified text was not in it
            # A first look with character bigrams alone: genuine text reads far worse re-phased
            # and is let go cheaply; a promising run is searched again with the full model.
            run = (view, vi, codec(name), model, trad, folded)
            allowed = _run_budget(limits, budget - wasted, work, spent_before, ceiling)
            rep = repair_at(*run, quick, allowed, work, annotated)
            if rep is None or rep.margin < QUICK_MARGIN:
                continue
            if rep.guessed:
                # A swallowed byte guessed from context: only ever reported, never edited; the
                # first look's reading will do.
                if best is None or rep.margin > best.margin:
                    best = rep
                continue
            if scorer is None:
                scorer = Scorer(model, trad, text, _suspect_spans(text, positions))
            allowed = _run_budget(limits, budget - wasted, work, spent_before, ceiling)
            rep = repair_at(*run, scorer, allowed, work, annotated)
            if rep is not None and (best is None or rep.margin > best.margin):
                best = rep
        if best is None or best.margin < (EDIT_MARGIN if best.guessed else FLAG_MARGIN):
            wasted += work.spent - spent_before
            continue
        length = best.end - best.start
        invented = len(best.replacement) - length > max_growth(length)
        conf = confidence(best.margin, best.gap, len(best.replacement), best.lost, best.codec)
        close = best.gap < MIN_EDIT_GAP
        unsure = conf < MIN_EDIT_CONFIDENCE or close
        weak = best.margin < EDIT_MARGIN or best.guessed or best.exhausted or invented
        end = best.end - vi + i
        syntax = syntax_at(text, i, end)
        unpaired = breaks_a_pair(text, i, end, best.replacement)
        elsewhere = written_elsewhere(text, i, end)
        flag = weak or unsure or syntax is not None or unpaired or elsewhere
        reason = (
            f"{_CODEC_NAMES[best.codec]} bytes read one byte out of phase; re-phased text "
            f"scores {best.margin:.1f} nats better under the {_LANG_NAMES[lang]} character "
            f"model"
        )
        if best.exhausted:
            reason += " (search cut short: not edited)"
        elif invented:
            reason += " (restores more characters than dropped pairs can lose: not edited)"
        elif conf < MIN_EDIT_CONFIDENCE:
            reason += (
                f" (rated {conf:.2f} likely to be exactly right, below {MIN_EDIT_CONFIDENCE}: "
                "not edited)"
            )
        elif syntax is not None:
            reason += f" ({syntax}: not edited)"
        elif unpaired:
            reason += " (the run holds half of a bracket pair on its line: not edited)"
        elif elsewhere:
            reason += " (the text writes what follows the `?` elsewhere, as it stands: not edited)"
        elif close:
            reason += (
                f" (the next-best reading of the same bytes scores only {best.gap:.1f} nats "
                f"worse, under {MIN_EDIT_GAP:g}: not edited)"
            )
        elif flag:
            reason += " (too little evidence to edit)"
        # The run starts at the trigger, right of every splice: it maps back by one shift.
        proposal = Proposal(
            i,
            best.end - vi + i,
            best.replacement,
            Category.CJK_PHASE_SLIP,
            reason,
            conf,
            flag_only=flag,
        )
        out.append(proposal)
        covered = proposal.end
        if weak:
            wasted += work.spent - spent_before
            continue
        # Damage found earns budget, applied or only too unsure to apply: counted as wasted,
        # the unsure readings of a page dense with slips ran a block out of budget and turned
        # its repairs into flags.
        budget = min(ceiling, budget + limits.earned_per_repair)
        if not unsure:
            applied.append(proposal)
            # A `?` right after the repair may open the next slip once the repair reads as
            # CJK (`?}?B`: the second `?` follows ASCII until `?}` reads `マ`).
            if text[covered : covered + 1] == "?" and covered not in positions_set:
                heapq.heappush(pending, covered)
    if len(out) == 1 and applied and _lone_in_clean_text(text, applied[0]):
        lone = applied[0]
        reason = f"{lone.reason} (the only one in {LONE_SLIP_CONTEXT}+ CJK characters: not edited)"
        out = [replace(lone, reason=reason, flag_only=True)]
    if starved or wasted >= budget or work.spent >= ceiling:
        out = starve(out)
        if starved:
            what = (
                "byte-phase slips"
                if searches < limits.max_searches
                else (f"byte-phase slips (at most {limits.max_searches} searches a block)")
            )
            found = exhausted_finding(text, work.starved_at, Category.CJK_PHASE_SLIP, what, budget)
            out = [p for p in out if p.end <= found.start] + [found]
    return out


# A re-phased run is longer than the run as it stands by the pairs the decoder dropped (one
# character each) and the characters a lost byte took with it. Misread pairs fall in a
# user-defined area about one time in seven, so a reading that needs more than half again
# as many characters, plus a few, is the model inventing text ('卸卸卸' read as '行动行动'):
# it is reported, never edited.
MAX_GROWTH_EXTRA = 4


def max_growth(length: int) -> int:
    """How many characters a phase-slip repair of length characters may add and be applied.

    >>> max_growth(2), max_growth(40)
    (5, 24)
    """
    return length // 2 + MAX_GROWTH_EXTRA


# How far a chained view reaches around its trigger, in code points: past what a search
# reads to the left (the line's open quotes, the model's history) and past the longest run a
# search budget can follow to the right.
CHAIN_REACH = 16384
# A repair ending this close before a trigger changes how the trigger is judged (the reach of
# `context.left_evidence`).
CHAIN_LEFT = LEFT_EVIDENCE_REACH


def _chained_view(text: str, i: int, applied: list[Proposal]) -> tuple[str, int]:
    """The text around the trigger text[i] as it reads once the repairs applied before it are,
    and the trigger's index there; text and i themselves when no repair ends close before it.
    """
    if not applied or i - applied[-1].end >= CHAIN_LEFT:
        return text, i
    lo = max(0, i - CHAIN_REACH)
    pieces: list[str] = []
    at = lo
    for p in applied:
        if p.end <= lo:
            continue
        if p.start < at:  # a repair straddling the window's left edge starts the view
            at = p.start
            pieces.clear()
        pieces += [text[at : p.start], p.replacement]
        at = p.end
    head = "".join(pieces) + text[at:i]
    return head + text[i : i + CHAIN_REACH], len(head)


# How far before a trigger a run reported (not edited) is read as its suggested repair when
# the trigger's left context is judged (as far as `context.reads_as_noise` reads).
JUDGED_REACH = NOISE_REACH


def _judged_view(text: str, i: int, view: str, vi: int, found: list[Proposal]) -> tuple[str, int]:
    """The text before the trigger text[i] as `reads_as_noise` judges it: the chained view,
    and a run just before the trigger that was found but only reported read as its suggested
    repair (a slip often follows another at once, and the first one's bytes read as noise).
    """
    if view is not text or not found or not found[-1].flag_only:
        return view, vi
    p = found[-1]
    if p.end > i or i - p.end >= JUDGED_REACH:
        return view, vi
    head = text[max(0, p.start - JUDGED_REACH) : p.start] + p.replacement + text[p.end : i]
    return head + text[i : i + 1], len(head)


def _run_budget(
    limits: SearchBudget, unspent: int, work: Work, spent_before: int, ceiling: int
) -> int:
    """What the next search may spend: limits.run_budget, or less when the call's budget for
    searches that repair nothing (unspent before this trigger, less what its searches spent
    since spent_before, if this one repairs nothing too) or its ceiling is nearer."""
    left = unspent - (work.spent - spent_before)
    return max(1, min(limits.run_budget, left, ceiling - work.spent))
