"""How the text around a phase slip reads: whether a `?` can open a slip, and the context a
reading is scored in.

The phase-slip stage (`cjk.slip.stage`) asks these before it spends a search on a trigger:
`candidate_positions` finds the `?` that could open a slip (the cheap pre-check),
`left_evidence` whether CJK text a slip could cut stands before it, `looks_improbable` whether
the text after it holds something the language does not write, and `reads_as_noise` whether
the text before it is random characters rather than the language (or, when too little stands
before it to tell, `stretch_reads_as_noise` whether the stretch of its line around it is
random characters with `?` strewn among them, as no damaged text is). The search
(`cjk.slip.search`) and the wrong-codec fills (`cjk.codecrun`) score readings in the context
these give: the text before and after a run without leaked pinyin annotations
(`text_before`, `text_after`), and the paired marks open before it (`open_quotes`,
`pairing_cost`).
"""

from __future__ import annotations

import math
import re
from itertools import pairwise

from textmend_server.cjk.lm import CharModel
from textmend_server.cjk.ruby import PINYIN_TAIL_RE, readings
from textmend_server.cjk.scripts import PINYIN_LETTERS, char_class

_FULLWIDTH_MARKS = "！？"
# Where a slip can start: `?` then a (possibly folded) full-width mark, `?` glued to a CJK
# character, or `<Han>?pinyin)` where an annotation was inserted inside a character's bytes.
_TRIGGER_RE = re.compile(
    rf"\?(?=[!?{_FULLWIDTH_MARKS}])"
    rf"|(?<=[^\s?])\?(?=[{PINYIN_LETTERS}]+\))"
    rf"|\?(?=[^\x00-\x7f])"
    rf"|(?<=[^\x00-\x7f])\?(?=[\x21-\x7e])"
)


def candidate_positions(text: str) -> list[int]:
    """Positions of `?` that could open a slip (the cheap pre-check)."""
    if "?" not in text:
        return []
    return [m.start() for m in _TRIGGER_RE.finditer(text)]


_RUBY_GROUP_RE = re.compile(rf"\([{PINYIN_LETTERS}1-5]{{1,8}}\)")
# How far before a trigger `left_evidence` reads, in code points: enough for an annotation
# group (`(` and up to 8 letters and `)`, which it reads past) and the five characters it
# weighs before the trigger. Chosen when the rule was written (fc3460e); no measurement was
# recorded. The stage's chained views (`stage.CHAIN_LEFT`) reach as far: a repair this close
# before a trigger is part of what the trigger is judged on.
LEFT_EVIDENCE_REACH = 24
_CJK_MARKS = frozenset("“”‘’…—·・")
_NOT_BEFORE_SLIP = frozenset("?!<>\"'=/&;")


def _is_cjk_char(ch: str) -> bool:
    if ch < "\u2000":
        return False
    cls = char_class(ch)
    return (
        cls in ("han", "kana", "hangul", "bopomofo")
        or ("\u3000" <= ch <= "\u303f")
        or ("\uff01" <= ch <= "\uff65")
        or ch in _CJK_MARKS
    )


def left_evidence(text: str, i: int) -> bool:
    """Whether the text before the trigger text[i] is CJK text a slip could cut: a CJK
    character just before it (an annotation `(pinyin)` aside), or an ASCII character folded
    from a full-width form with a CJK character right before that. Markup, spaces, other
    `?` and the start of the text are no such evidence.

    >>> left_evidence("公司?!彼Q", 2), left_evidence("??<b>?他", 5), left_evidence("??", 0)
    (True, False, False)
    >>> left_evidence("进展;?huī)屑", 3), left_evidence("&nbsp;?他", 6)
    (True, False)
    """
    before = _RUBY_GROUP_RE.sub("", text[max(0, i - LEFT_EVIDENCE_REACH) : i])
    if not before:
        return False
    prev = before[-1]
    if _is_cjk_char(prev):
        return True
    if prev == ";" and len(before) > 1 and _is_cjk_char(before[-2]):
        return True  # a folded `；` (an entity's `;` follows its name, never a CJK character)
    if prev.isspace() or prev in _NOT_BEFORE_SLIP or not prev.isascii():
        return False
    return any(_is_cjk_char(ch) for ch in before[-5:-1])


# A search whose best reading averages below NOISE_FLOOR nats a character after NOISE_AFTER
# characters is abandoned: running text averages about -5, random characters about -15.
NOISE_FLOOR = -10.0
NOISE_AFTER = 10

# How many characters after a trigger `looks_improbable` reads: a slip shows within a few
# characters (the first version's choice, 18da600).
AFTER_WINDOW = 8
# Below this bigram log-probability (nats) a character after the trigger is improbable for the
# language, and the trigger is searched: about 1e-5, rarer than all but the rarest characters
# after their neighbours in running text (running text averages about -5 a character, random
# characters about -15, see NOISE_FLOOR). Hand-set in the first version (18da600); no
# measurement was recorded.
IMPROBABLE_LOGP = -11.5

# How many characters before a trigger `reads_as_noise` weighs, and the fewest distinct ones
# it judges on. Eight: the window `looks_improbable` reads after a trigger. Measured on the
# eight characters before each searched trigger as they stand: on 20 dense generated documents
# (`bench/cjk_bench.py --dense`) every trigger whose search found a repair followed text
# averaging -8.3 nats or better under the character bigrams (median -5.5), while the triggers
# of the adversarial corpus's random mixes (`bench/adversarial.py`, 100 B to 10 KB) follow
# -11 to -20 (medians -13 to -14); the cut is NOISE_FLOOR (-10). With the rule as written
# (ASCII left out, a reported run read as its suggestion) the sample article, tests/cases and
# 120 generated documents repair exactly as before it.
NOISE_CONTEXT = AFTER_WINDOW
NOISE_CONTEXT_MIN = 3
# How far back `reads_as_noise` reads, ASCII and annotations included, to find NOISE_CONTEXT
# characters that are not ASCII.
NOISE_REACH = 3 * NOISE_CONTEXT


def reads_as_noise(text: str, i: int, model: CharModel, traditional: bool | None) -> bool | None:
    """Whether the text just before the trigger text[i] reads as random characters (averages
    below NOISE_FLOOR nats a character under the character bigrams, leaked annotations
    aside): text a decoder read in step is the language, so no slip starts after noise, and
    a search there only spends budget (issue 16's random Unicode and Han-and-`?` mixes).
    None when there is too little before the trigger to judge: the caller judges the stretch
    of the line around it instead (`stretch_reads_as_noise`).

    >>> from textmend_server.cjk.lm import get_model
    >>> m = get_model("zh")
    >>> reads_as_noise("他們說公司?!彼Q", 5, m, True), reads_as_noise("唫剈低冉圁匎?", 6, m, False)
    (False, True)
    >>> reads_as_noise("乤?吭?堡?喲?凌?", 9, m, False), reads_as_noise("唫?剈?", 1, m, False)
    (True, None)
    """
    # ASCII is left out: `?` between random characters reads as a plausible neighbour of any
    # of them (`字?字?`), and digits, folded marks and entities say nothing of whether the
    # characters around them are the language.
    left = text_before(text, i, NOISE_REACH)
    left = left[left.rfind("\n") + 1 :]
    left = "".join(ch for ch in left if not ch.isascii())[-NOISE_CONTEXT - 1 :]
    if len(set(left)) < NOISE_CONTEXT_MIN:
        # Too little to judge, or one character repeated, which the bigrams cannot tell from
        # noise: a wall of one GBK character re-phased is left to the search, whose growth
        # rule reports it (tests/test_properties.py).
        return None
    total = 0.0
    for prev, ch in pairwise(left):
        total += model.logp(prev, ch, traditional)
    return total < NOISE_FLOOR * (len(left) - 1)


# When the text before a trigger is too short to judge (the first triggers of a line), the
# stretch of the line around it is judged instead (`stretch_reads_as_noise`): the line cut in
# pieces of STRETCH code points, the trigger's piece weighed whole. Twice `stage.SUSPECT_REACH`
# (120), the farthest a run is followed past its trigger: a piece holds the trigger's run and
# the text around it. Pieces, not a window centred on each trigger, so that a line is weighed
# once whatever the number of its triggers.
STRETCH = 240
# A stretch is noise only if it also holds at least one trigger (a `?` that passes
# `left_evidence` and `looks_improbable`) for every TRIGGER_SPACING characters that are not
# ASCII, and MIN_TRIGGERS in all: real slips are sparse. Measured on every trigger that had
# too little before it to judge and that the stage searched (the rule switched off), in the
# `?` strings of tests/test_cjk.py and tests/test_cost.py, `bench/cjk_bench.py`'s documents
# at seed 90210 (120 GBK of each kind, 40 Big5, 40 Shift-JIS), its 60 dense documents and the
# sample article: 46 stretches, 41 repaired or reported, 35 of those with enough characters
# to judge; they averaged -4.3 to -13.4 nats a character, and the 4 below NOISE_FLOOR with
# two triggers or more held at most one per 13.5 characters. The adversarial corpus's random
# mixes and Han-and-`?` (`bench/adversarial.py`, 100 B to 3 KB, 8 seeds each: 60 stretches)
# averaged -13.7 to -19 with at least one trigger per 9.3 characters (one per 1 for Han and
# `?`), two at the fewest. The average alone would have left a margin of 0.3 nats, and the
# density alone does not separate them (a repaired stretch held one trigger per 8
# characters); with both, every adversarial stretch is noise and no repaired one is.
TRIGGER_SPACING = 10
# One trigger says nothing of how sparse they are: a short text that is one slip reads as
# noise from end to end and holds one (`3人??偛酶窭赘瘛げ剂_克曼`, tests/test_cjk.py).
MIN_TRIGGERS = 2


def stretch_reads_as_noise(
    text: str, start: int, end: int, model: CharModel, traditional: bool | None
) -> bool:
    """Whether text[start:end] (a stretch of one line) reads as random characters with `?`
    strewn among them: its characters that are not ASCII average below NOISE_FLOOR nats under
    the character bigrams, and it holds a trigger for every TRIGGER_SPACING of them and at
    least MIN_TRIGGERS. Too few characters (fewer than NOISE_CONTEXT, or fewer than
    NOISE_CONTEXT_MIN distinct) are not judged: False, and the trigger is searched.

    >>> from textmend_server.cjk.lm import get_model
    >>> m = get_model("zh")
    >>> t = "唫?剈?低?冉?圁?匎?俰?刐?呭?咾?"
    >>> stretch_reads_as_noise(t, 0, len(t), m, False)
    True
    >>> t = "公司?!彼Q他們的工作很好，大家都知道這件事情。"
    >>> stretch_reads_as_noise(t, 0, len(t), m, True)
    False
    """
    piece = text[start:end]
    chars = [ch for ch in piece if not ch.isascii()]
    if len(chars) < NOISE_CONTEXT or len(set(chars)) < NOISE_CONTEXT_MIN:
        return False
    total = 0.0
    for prev, ch in pairwise(chars):
        total += model.logp(prev, ch, traditional)
    if total >= NOISE_FLOOR * (len(chars) - 1):
        return False
    triggers = sum(
        1
        for k in candidate_positions(piece)
        if left_evidence(piece, k) and looks_improbable(piece, k, model, traditional)
    )
    return triggers >= MIN_TRIGGERS and triggers * TRIGGER_SPACING >= len(chars)


def stretch_of(text: str, i: int) -> tuple[int, int]:
    """The stretch of its line the trigger text[i] is judged in when the text before it is
    too short (`stretch_reads_as_noise`): the line cut in pieces of STRETCH code points.

    >>> stretch_of("ab\\n" + "x" * 500, 300)
    (243, 483)
    """
    line = text.rfind("\n", 0, i) + 1
    end = text.find("\n", i)
    end = len(text) if end < 0 else end
    start = line + (i - line) // STRETCH * STRETCH
    return start, min(end, start + STRETCH)


def looks_improbable(text: str, i: int, model: CharModel, traditional: bool | None) -> bool:
    """Whether the few characters after text[i] hold something improbable for the language:
    a rare character, kana or bopomofo among Han, or a lone Latin letter."""
    window = text[i + 1 : i + 1 + AFTER_WINDOW]
    prev = text[i - 1] if i > 0 else ""
    if text[i + 1 : i + 2] in ("!", "?", "！", "？"):
        return True
    for ch in window:
        cls = char_class(ch)
        if cls in ("bopomofo", "pua") or (cls == "kana" and model.lang != "ja"):
            return True
        if cls == "latin" and ch.isascii():
            return True
        if model.logp(prev, ch, traditional) < IMPROBABLE_LOGP:
            return True
        prev = ch
    return False


_OPEN_CLOSE = {"“": "”", "「": "」", "『": "』", "《": "》", "（": "）"}
_CLOSERS = {v: k for k, v in _OPEN_CLOSE.items()}
# Marks a paragraph usually ends on (before any closing quote).
_SENTENCE_END = frozenset("。！？!?…．.")
# What `pairing_cost` charges, in nats: a closing mark with nothing open to close; a paragraph
# ending with a mark still open (0.1 like a stray closer in the first version, 18da600; 0.01
# since 84bc3ed, so that a line that opened `（` and lost its last `）`'s lead byte is filled
# with `）`, not `，`: tests/test_cjk.py); a paragraph ending on no sentence mark. Hand-set,
# held to the tests' cases, not measured.
STRAY_CLOSER_COST = math.log(0.1)
LEFT_OPEN_COST = math.log(0.01)
UNFINISHED_COST = math.log(0.2)


# How far back on a line a mark is looked for: quotations are sentences, not pages, and a
# search per run over a whole long line would make the work grow with its square.
QUOTE_REACH = 2000


def open_quotes(text: str, start: int) -> list[str]:
    """The paired marks still open on the line of text before start (outermost first), within
    QUOTE_REACH code points. When none is, a mark left open by one of the three lines before
    stands in for it, as a quotation running over several paragraphs opens each and closes
    only the last.

    >>> open_quotes("他說：『好", 5), open_quotes("『" + "字" * QUOTE_REACH, QUOTE_REACH + 1)
    (['『'], [])
    """
    line_start = text.rfind("\n", 0, start) + 1
    stack = _stack(text[max(line_start, start - QUOTE_REACH) : start])
    if not stack and line_start > 0:
        back = line_start - 1
        for _ in range(3):
            prev_start = text.rfind("\n", 0, back) + 1
            carried = _stack(text[max(prev_start, back - QUOTE_REACH) : back])
            if carried:
                return [_CARRIED + carried[-1]]
            if prev_start == 0:
                break
            back = prev_start - 1
    return stack


# Marks a quotation carried over from an earlier paragraph: it may close here, and need not.
_CARRIED = "\x01"


def _stack(line: str) -> list[str]:
    stack: list[str] = []
    for ch in line:
        if ch in _OPEN_CLOSE:
            stack.append(ch)
        elif ch in _CLOSERS and stack and stack[-1] == _CLOSERS[ch]:
            stack.pop()
    return stack


def pairing_cost(stack: list[str], piece: str, line_ends: bool) -> float:
    """Log-cost of piece's paired marks given the marks open before it: a closing mark with
    nothing open, or a line ending with a mark still open, is unusual in running text.

    >>> pairing_cost(["“"], "。”", True) > pairing_cost(["“"], "海。", True)
    True
    """
    stack = list(stack)
    cost = 0.0
    for ch in piece:
        if ch in _OPEN_CLOSE:
            stack.append(ch)
        elif ch in _CLOSERS:
            if stack and stack[-1] in (_CLOSERS[ch], _CARRIED + _CLOSERS[ch]):
                stack.pop()
            else:
                cost += STRAY_CLOSER_COST
    if line_ends:
        if any(not m.startswith(_CARRIED) for m in stack):
            # A paragraph left with a bracket or quotation open (one not carried over from
            # the paragraphs before) is rarer still than a stray closing mark.
            cost += LEFT_OPEN_COST
        body = piece.rstrip("".join(_CLOSERS))
        if body and body[-1] not in _SENTENCE_END:
            cost += UNFINISHED_COST
    return cost


# How far back an annotation's opening parenthesis is looked for (eight syllables, spaced).
_ANNOTATION_REACH = 64


def text_before(text: str, i: int, n: int) -> str:
    """The n characters before text[i] as they read without leaked pinyin annotations: the
    context a reading is scored in. A slip often starts right after an annotation, and the
    stage that removes them runs later; `上(shàng)` must give the model 上, not `)`.

    >>> text_before("他說上(shàng)", 10, 2), text_before("蘋果(Apple)", 9, 2)
    ('說上', 'e)')
    """
    out: list[str] = []
    end = i
    while len(out) < n and end > 0:
        if text[end - 1] == ")":
            k = text.rfind("(", max(0, end - _ANNOTATION_REACH), end - 1)
            if k > 0:
                m = PINYIN_TAIL_RE.fullmatch(text, k + 1, end)
                if m and m.group(1) in readings(text[k - 1]):
                    end = k
                    continue
        out.append(text[end - 1])
        end -= 1
    return "".join(reversed(out))


def text_after(text: str, j: int, n: int, host: str) -> str:
    """The n characters from text[j] on as they read without a leaked annotation of host (the
    character before j) right at j: the text a run's reading is followed by. An annotation
    the converter put after the run's last character is evidence for that character, not
    Latin text after it.

    >>> text_after("(hǎi)科技", 0, 2, "海"), text_after("(hǎi)科技", 0, 2, "。")
    ('科技', '(h')
    """
    if text[j : j + 1] == "(" and host:
        m = PINYIN_TAIL_RE.match(text, j + 1)
        if m and m.group(1) in readings(host):
            j = m.end()
    return text[j : j + n]
