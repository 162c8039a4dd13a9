"""The repair stages, in the order the engine runs them: one registry for the engine, the
tests and the benches.

A stage is a finder (text → `Proposal`s, in the spirit of ftfy's `fixes.py`: each one small,
named and testable alone) with what the engine needs to run it cheaply: the categories it can
report (a policy that wants none of them skips it), a gate (a quick test of whether it can find
anything at all in a text, so clean text passes on the gates alone), a trigger (a sharper
test, for the engine's fast path: False proves the finder finds nothing in the text or in any
part of it) and its reach (how much of the text one finding depends on, which decides whether
it can be run a block of lines at a time and, after the first pass, only around what the pass
before changed).

A trigger must be sound for every part of the text the engine may hand its finder (a block, a
window around a change): each one tests for a superset of what its finder matches, with
patterns that have no anchors or look-arounds, so that what matches in a part matches in the
whole. `tests/test_clean_path.py` checks that the engine answers the same with and without them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from functools import partial

from textmend_server import cjk
from textmend_server.cjk.codecrun import may_hold_han_runs, may_hold_latin_runs
from textmend_server.cjk.scripts import (
    BOPOMOFO_RANGES,
    HAN_RANGES,
    HANGUL_RANGES,
    KANA_RANGES,
)
from textmend_server.edits import EditLog, Proposal
from textmend_server.fixes import (
    Finder,
    find_mojibake,
    find_stray_characters,
    may_hold_mojibake,
    may_hold_strays,
    plain_rest,
)
from textmend_server.markup import (
    find_entity_leaks,
    find_tag_leaks,
    may_hold_entities,
    may_hold_tags,
)
from textmend_server.policy import Category
from textmend_server.repeats import find_repeated_blocks, may_repeat

# CJK blocks no CJK stage reads as letters, but which only CJK text (or CJK text read in the
# wrong code page) carries: Kangxi and supplementary radicals, CJK punctuation, enclosed letters and
# compatibility squares, Hangul Jamo extensions, vertical and full-width forms. A gate must
# let through every text its stage could find something in, so it is wider than the letters.
# (Not the curly quotes and dashes `scripts.CJK_PUNCT_RANGES` also lists: English has them,
# and the CJK stages would then search every English text that quotes.)
_OTHER_CJK_BLOCKS = "\u2e80-\u2fdf\u3000-\u303f\u3200-\u33ff\u4dc0-\u4dff\ua960-\ua97f\ud7b0-\ud7ff"
_FORMS = "\ufe30-\ufe4f\uff00-\uffef"
_CJK_GATE = re.compile(
    f"[{HAN_RANGES}{KANA_RANGES}{BOPOMOFO_RANGES}{HANGUL_RANGES}{_OTHER_CJK_BLOCKS}{_FORMS}]"
)


class TextFacts:
    """What the stage gates ask of one version of the text, each worked out once: a pass
    asks whether the text has CJK characters three times, and the answer only changes when a
    stage has edited it."""

    __slots__ = ("_ascii", "_cjk", "_rest", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._ascii: bool | None = None
        self._cjk: bool | None = None
        self._rest: str | None = None

    @property
    def ascii(self) -> bool:
        """Whether the text is pure ASCII."""
        if self._ascii is None:
            self._ascii = self.text.isascii()
        return self._ascii

    @property
    def cjk(self) -> bool:
        """Whether the text has a Han, kana, bopomofo or Hangul character, CJK punctuation or
        a full-width form.

        >>> TextFacts("It\u2019s \u201cfine\u201d \u2014 caf\u00e9").cjk, TextFacts("\u3002").cjk
        (False, True)
        """
        if self._cjk is None:
            # Every character the gate looks for is beyond ASCII, so the rest holds them all.
            self._cjk = not self.ascii and _CJK_GATE.search(self.rest) is not None
        return self._cjk

    @property
    def rest(self) -> str:
        """The text less printable ASCII and layout (`fixes.plain_rest`): what the triggers
        that look for characters beyond ASCII scan, a few characters of clean English."""
        if self._rest is None:
            self._rest = plain_rest(self.text)
        return self._rest


class Reach(Enum):
    """How much of the text a stage's finding at one place depends on."""

    # The text within `EngineConfig.local_reach` code points (and its line, for mojibake):
    # after the first pass the stage looks again only around what the pass before changed.
    LOCAL = "local"
    # The block of lines it is in (the CJK stages judge a run by the language of its block):
    # run a block at a time, over all of the text each pass.
    BLOCK = "block"
    # The whole document (a repeat is found against everything before it): never cut.
    WHOLE = "whole"


def _always(facts: TextFacts) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One repair stage: see the module's docstring."""

    name: str
    categories: frozenset[Category]
    finder: Finder
    gate: Callable[[TextFacts], bool]
    reach: Reach
    # Whether it judges markup by the whole document's evidence (`markup.markup_evidence`):
    # the engine passes that evidence in, and looks at the whole text again when it changes.
    markup: bool = False
    # Whether it searches within a budget (`cjk.budget.SearchBudget`, its `limits` argument):
    # the engine passes the one its configuration names.
    budgeted: bool = False
    # The fast path's sharper gate: False proves the finder finds nothing in the text or any
    # part of it (see the module's docstring).
    trigger: Callable[[TextFacts], bool] = _always


STRAY_CATEGORIES = frozenset(
    {
        Category.CONTROL_CHAR,
        Category.REPLACEMENT_CHAR,
        Category.PRIVATE_USE,
        Category.NONCHARACTER,
        Category.STRAY_BOM,
        Category.ZERO_WIDTH,
        Category.BIDI_CONTROL,
    }
)


def _markup_stage(name: str, finder: Finder, needs: str, trigger: Callable[[str], bool]) -> Stage:
    """A markup stage: it reports leaked markup, judged on the document's evidence, and can
    find nothing in a text without the character `needs`, nor where `trigger` says no."""
    return Stage(
        name,
        frozenset({Category.MARKUP_LEAK}),
        finder,
        lambda f: needs in f.text,
        Reach.LOCAL,
        markup=True,
        trigger=lambda f: trigger(f.text),
    )


def _cjk_stage(
    category: Category,
    finder: Finder,
    gate: Callable[[TextFacts], bool],
    budgeted: bool = False,
    trigger: Callable[[TextFacts], bool] = _always,
    name: str = "",
) -> Stage:
    """A CJK stage: named after the one category it reports unless name is given, judging a
    run by the language of its block (`Reach.BLOCK`)."""
    return Stage(
        name or category.value,
        frozenset({category}),
        finder,
        gate,
        Reach.BLOCK,
        budgeted=budgeted,
        trigger=trigger,
    )


# The order matters. Runs of CJK text read as Latin-1 or cp1252 are re-decoded first: Shift-JIS
# or EUC-KR read that way holds pieces that ftfy takes for UTF-8 mojibake (`\x82Å` → `ŉ`) and
# C1 bytes the stray stage takes for controls, and either, run first, left the run nothing to
# re-decode (through the engine, the CJK bench's Shift-JIS runs read as Latin-1 were restored
# 0 times in 40 where the stage alone restored 40; UTF-8 read as cp1252, ftfy's domain, is no
# such run's reading and is restored as before). Mojibake is then undone before the other CJK
# stages read the text; slips are re-phased before Han runs are re-decoded (a slip's misread
# characters are also rare Han: reported as a wrong-codec run first, they would keep the slip
# from being repaired); the CJK stages run before markup (a slip can swallow the `<` of a tag:
# `?/p>`), and strays and repeats are judged last, on text the other repairs have settled.
STAGES: tuple[Stage, ...] = (
    _markup_stage("entities", find_entity_leaks, "&", may_hold_entities),
    _cjk_stage(
        Category.CJK_WRONG_CODEC,
        partial(cjk.find_wrong_codec_runs, han=False),
        lambda f: not f.ascii,
        budgeted=True,
        trigger=lambda f: may_hold_latin_runs(f.text, f.rest),
        name="cjk_wrong_codec_latin",
    ),
    Stage(
        "mojibake",
        frozenset({Category.MOJIBAKE}),
        find_mojibake,
        lambda f: not f.ascii,
        Reach.LOCAL,
        trigger=lambda f: may_hold_mojibake(f.text, f.rest),
    ),
    _cjk_stage(Category.CJK_PHASE_SLIP, cjk.find_phase_slips, lambda f: f.cjk, budgeted=True),
    _cjk_stage(
        Category.CJK_WRONG_CODEC,
        partial(cjk.find_wrong_codec_runs, latin=False),
        lambda f: not f.ascii,
        budgeted=True,
        trigger=lambda f: may_hold_han_runs(f.rest),
    ),
    _cjk_stage(Category.RUBY_LEAK, cjk.find_ruby_leaks, lambda f: f.cjk and "(" in f.text),
    _markup_stage("tags", find_tag_leaks, ">", may_hold_tags),
    Stage(
        "stray",
        STRAY_CATEGORIES,
        find_stray_characters,
        _always,
        Reach.LOCAL,
        trigger=lambda f: may_hold_strays(f.rest),
    ),
    Stage(
        "repeated",
        frozenset({Category.REPEATED_BLOCK}),
        find_repeated_blocks,
        _always,
        Reach.WHOLE,
        trigger=lambda f: may_repeat(f.text),
    ),
)

STAGE_NAMES = tuple(stage.name for stage in STAGES)
# The CJK stages, in engine order: what the CJK bench and tests run on their own.
CJK_STAGES = tuple(s for s in STAGES if s.reach is Reach.BLOCK)


def stage(name: str) -> Stage:
    """The stage of that name.

    >>> stage("mojibake").categories
    frozenset({<Category.MOJIBAKE: 'mojibake'>})
    """
    for s in STAGES:
        if s.name == name:
            return s
    raise KeyError(f"no stage {name!r}; the stages are {', '.join(STAGE_NAMES)}")


# What a run is when a stage reports it as one of these and does not repair it: bytes read the
# wrong way whose right reading is in doubt. A later stage's edit inside such a run would
# rewrite part of a garble into another garble (a pinyin annotation the converter matched across
# two misread characters, `的(de)谌耸`, taken out of an unrepaired slip; the C1 control of a
# reported `â€\x9d` removed, leaving `â€`), so it is reported instead (`left_garbled`): the
# rule that weak evidence is flagged, not fixed.
GARBLE_CATEGORIES = frozenset(
    {Category.CJK_PHASE_SLIP, Category.CJK_WRONG_CODEC, Category.MOJIBAKE}
)
GARBLE_REASON = " (inside a run reported as misread and not repaired: not edited)"
# Of those, the ones held only for the rest of the pass that reported them: mojibake's doubts
# depend on the text around it, which later passes change (`Ðº` reads as a lone Cyrillic
# letter with nothing Cyrillic near until the words around it are repaired; held from one
# pass to the next, 110 of 2,107 paragraphs of planted mojibake stayed half repaired). Each
# pass judges it again, and holds it again if it is still reported.
PASS_LOCAL_GARBLE = frozenset({Category.MOJIBAKE})


class Garbled:
    """The runs (original coordinates) that stages reported as misread and left as they are,
    kept sorted and disjoint (overlapping runs joined)."""

    __slots__ = ("_spans",)

    def __init__(self) -> None:
        self._spans: list[tuple[int, int]] = []

    def add(self, start: int, end: int, proposal: Proposal) -> None:
        """Remember a finding left in the text, if it is of a garble category."""
        if proposal.category not in GARBLE_CATEGORIES or end <= start:
            return
        spans = self._spans
        k = bisect_right(spans, (start, end))
        lo, hi = k, k
        while lo > 0 and spans[lo - 1][1] >= start:
            lo -= 1
        while hi < len(spans) and spans[hi][0] <= end:
            hi += 1
        joined = spans[lo:hi]
        if joined:
            start, end = min(start, joined[0][0]), max(end, max(b for _, b in joined))
        spans[lo:hi] = [(start, end)]

    def holds(self, start: int, end: int) -> bool:
        """Whether [start, end) overlaps a remembered run (an empty span: lies inside one).

        >>> g = Garbled()
        >>> g.add(4, 9, Proposal(4, 9, "x", Category.CJK_PHASE_SLIP, "slip", 0.3, flag_only=True))
        >>> g.add(2, 5, Proposal(2, 5, "y", Category.CJK_WRONG_CODEC, "codec", 0.3, flag_only=True))
        >>> g.holds(0, 2), g.holds(1, 3), g.holds(8, 12), g.holds(9, 10), g.holds(6, 6)
        (False, True, True, False, True)
        """
        k = bisect_right(self._spans, (max(end, start + 1), 0)) - 1
        return k >= 0 and self._spans[k][1] > start

    def ends_at(self, at: int) -> bool:
        """Whether a remembered run ends right before at.

        >>> g = Garbled()
        >>> g.add(4, 9, Proposal(4, 9, "x", Category.CJK_PHASE_SLIP, "slip", 0.3, flag_only=True))
        >>> g.ends_at(9), g.ends_at(10)
        (True, False)
        """
        k = bisect_right(self._spans, (at, 0)) - 1
        return k >= 0 and self._spans[k][1] == at


# In an HTML page, what its script and style elements hold is code and data that a program
# reads, not text: a minified library's `"\u200b\x85"` whitespace check (its NEL read as `…`),
# a scrambled payload a script decodes (`Ü¹` "repaired" into a Syriac mark). An edit inside one
# is reported, not made.
CODE_ELEMENT_REASON = "; inside an HTML <script> or <style> element, code: reported, not edited"
_CODE_ELEMENT_OPEN = re.compile(r"<(script|style)\b[^>]*>", re.IGNORECASE)
# Their ends, searched without a lower-cased copy of the page (a page may be 64 MB).
_CODE_ELEMENT_CLOSE = {name: re.compile(f"</{name}", re.IGNORECASE) for name in ("script", "style")}


def code_elements(text: str) -> list[tuple[int, int]]:
    """The spans of the contents of text's `<script>` and `<style>` elements, in order (an
    element left open runs to the end).

    >>> code_elements('<p>a</p><script type="x">var a="<b>";</script><STYLE>p{}</STYLE>')
    [(25, 37), (53, 56)]
    """
    if "<" not in text:
        return []
    spans: list[tuple[int, int]] = []
    at = 0
    while (m := _CODE_ELEMENT_OPEN.search(text, at)) is not None:
        close = _CODE_ELEMENT_CLOSE[m.group(1).lower()].search(text, m.end())
        end = len(text) if close is None else close.start()
        spans.append((m.end(), end))
        at = end
    return spans


def inside_spans(spans: list[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) overlaps one of the sorted, disjoint spans.

    >>> inside_spans([(5, 9)], 8, 12), inside_spans([(5, 9)], 9, 12)
    (True, False)
    """
    k = bisect_right(spans, (start, end)) - 1
    return any(a < end and start < b for a, b in spans[max(k, 0) : k + 2])


def left_in_code(proposal: Proposal) -> Proposal:
    """proposal as a finding: it lies inside an HTML page's script or style element."""
    return replace(proposal, flag_only=True, reason=proposal.reason + CODE_ELEMENT_REASON)


def below_floor(proposal: Proposal, floor: float) -> Proposal:
    """proposal as a finding: it is rated less likely to be right than the request's
    `min_confidence` allows an edit to be (its repair stays as the suggestion)."""
    reason = (
        f"{proposal.reason} (rated {proposal.confidence:.2f} likely to be right, below the "
        f"request's min_confidence of {floor:g}: not edited)"
    )
    return replace(proposal, flag_only=True, reason=reason)


def left_garbled(proposal: Proposal) -> Proposal:
    """proposal as a finding: it lies inside a run reported as misread (`GARBLE_CATEGORIES`)."""
    return replace(proposal, flag_only=True, reason=proposal.reason + GARBLE_REASON)


def apply_stages(
    text: str, stages: tuple[Stage, ...] = CJK_STAGES, min_confidence: float = 0.0
) -> str:
    """The text with every edit (not flag-only findings) of the stages applied, one after the
    other in the order given, over the whole text at once: how the CJK benchmark and tests
    measure the CJK stages without the rest of the engine. As in the engine, an edit inside a
    run an earlier stage reported as misread is not made (`Garbled`), nor one rated below
    min_confidence (the request's `min_confidence`).

    >>> apply_stages("創(chuàng)建者")
    '創建者'
    """
    return staged_log(text, stages, min_confidence).text


def staged_log(
    text: str, stages: tuple[Stage, ...] = CJK_STAGES, min_confidence: float = 0.0
) -> EditLog:
    """What `apply_stages` does, as the log of its edits: the benchmark judges each edit."""
    log = EditLog(text)
    garbled = Garbled()
    for s in stages:
        edits = []
        for p in s.finder(log.text):
            start, end = log.to_original(p.start, p.end)
            if p.flag_only or p.confidence < min_confidence:
                garbled.add(start, end, p)
            elif garbled.holds(start, end):
                garbled.add(start, end, left_garbled(p))
            else:
                edits.append(p)
        log.apply(edits)
    return log
