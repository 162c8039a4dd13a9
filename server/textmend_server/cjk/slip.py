"""CJK byte-phase slips: double-byte text read one byte out of step, and put back in step.

What happened (the byte model): a piece of GBK (or Big5, Shift-JIS) text was cut after a lead
byte, which the lossy decoder turned into `?`; the next piece started on a trail byte, so the
decoder read (trail, next lead) pairs, `。”他稱` coming out as `?！彼Q`, until a byte below 0x80
landed in lead position and put it back in step. Pairs in the user-defined areas became
private-use characters and were dropped; a lead byte followed by a byte below 0x40 became `?`
and swallowed that byte (the `(` of a pinyin annotation, the `<` of `</p>`); full-width ASCII
forms may later have been folded to ASCII.

How it is undone: from the `?`, each observed character is re-encoded to its two bytes
(trail of one original character, lead of the next), and a bounded beam search walks the run,
choosing the bytes that were lost (the orphaned lead byte, the byte a swallow took, dropped
user-defined pairs) as the language model prefers (`lm.Scorer`: character bigrams, a word
lattice and the document's own character pairs). A dropped pair costs nothing by itself: which
pairs drop is fixed by the characters chosen, so the model alone weighs a reading with more
characters against one with fewer. Where the lead byte is wide open (after a dropped or
unreadable pair) the candidates are the most frequent characters plus those that continue a
word after the character before; a swallowed byte followed by `pinyin)` is a character with
that reading. A run ends where a byte below 0x80 resynchronised the decoder. The best
reconstruction is kept only when it scores clearly better than the text as it stands; weaker
evidence is reported, not edited.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from itertools import pairwise

from textmend_server import cache
from textmend_server.cjk.dbcs import Dbcs
from textmend_server.cjk.lm import AFTER_DIGIT, PLAIN_DIGITS, CharModel, Scorer, WordModel
from textmend_server.cjk.ruby import PINYIN_TAIL_RE, Annotated, readings
from textmend_server.cjk.scripts import PINYIN_LETTERS, char_class, fold_width
from textmend_server.edits import Proposal
from textmend_server.policy import Category

# Bytes one entry of each memo holds (key, value and the dict's slot): what `cache` counts
# against the process's budget. Estimates from the shapes of the keys and values (tuples of
# short strings, about 250 bytes a small entry); not yet measured with tracemalloc.
ENTRY_BYTES_ALL = 900
ENTRY_BYTES_LIKELY = 600
ENTRY_BYTES_DROPS = 1_500
ENTRY_BYTES_INDEX = 60_000
ENTRY_BYTES_SHORTLIST = 1_400
ENTRY_BYTES_FIRST_LOOK = 2_500

BEAM = 48
CHILDREN = 6
MAX_RUN = 300
# Channel costs, in nats. A dropped user-defined pair has none: whether a pair drops follows
# from the characters chosen (see the module docstring).
P_DROP = 0.0
P_SWALLOW = math.log(0.05)
P_CUT = math.log(0.2)
P_UNASSIGNED = math.log(0.05)
# A repair must beat the text as it stands by this many nats to be applied; between the two
# margins it is reported with the repair as a suggestion.
EDIT_MARGIN = 8.0
FLAG_MARGIN = 4.0
# A search whose best reading trails the text as it stands by this much is abandoned.
ABORT_MARGIN = 25.0
# Work limits, in candidate evaluations (a character scored in context, or ranked by the cheap
# bigrams before that): a search that spends RUN_BUDGET stops, and whatever it found is only
# reported, never edited. Pairs no character stands for (read as `?`) end a run after
# MAX_UNREADABLE of them: real slips hold one or two, a wall of `?` is not text.
RUN_BUDGET = 300_000
MAX_UNREADABLE = 2
# A search whose best reading averages below NOISE_FLOOR nats a character after NOISE_AFTER
# characters is abandoned: running text averages about -5, random characters about -15.
NOISE_FLOOR = -10.0
NOISE_AFTER = 10


class Work:
    """Candidate evaluations spent: process-wide in `Work.total` (for tests and monitoring),
    and per instance by whoever passes one to `repair_at` (a caller's budget)."""

    total = 0

    def __init__(self) -> None:
        self.spent = 0
        # Where in the text the budget ran out (-1: it did not): reported as a finding.
        self.starved_at = -1


# What one call of a search stage (per block of text) may spend: a floor for the searches a
# single damaged run needs, plus a share per character, never more than MAX_PER_CHAR per
# character (so that a short text does not get the whole floor) nor CALL_CEILING per block.
# SEARCH_FLOOR: one slip running 28 characters (a folded digit run with an annotation, in
# tests/test_cjk.py) spends 126,000 evaluations; a sentence of 25-31 characters holding one
# short slip 24,000 (a first look and a full search in two codecs). The floor was 800,000
# until issue 16: 565 bytes of random Unicode spent it in full, 0.6 s.
# MAX_PER_CHAR: genuine short questions spend up to 3,000 a character (`為什麼??`: 14,000
# for 5), and must be searched in full, or clean text would be reported as not searched.
# BUDGET_PER_CHAR: what a page of slips needs beyond the floor (repairs applied earn more,
# `cjk.EARNED_PER_REPAIR`). CALL_CEILING: the floor and the share of a full block
# (engine.BLOCK, 16,384 code points).
SEARCH_FLOOR = 150_000
BUDGET_PER_CHAR = 60
MAX_PER_CHAR = 4_000
CALL_CEILING = SEARCH_FLOOR + BUDGET_PER_CHAR * 16_384
# The name the package has always exported for the per-call floor.
CALL_BUDGET = SEARCH_FLOOR


def call_budget(length: int, per_char: int = MAX_PER_CHAR) -> int:
    """How many candidate evaluations one call may spend on a text of length code points,
    at most per_char for each and never more than CALL_CEILING.

    >>> call_budget(12), call_budget(10_000), call_budget(50, per_char=500)
    (48000, 750000, 25000)
    """
    return min(CALL_CEILING, SEARCH_FLOOR + BUDGET_PER_CHAR * length, per_char * length)


STARVED = " (more suspect runs here than the search budget covers: not edited)"
# The reason of the finding a search stage leaves where its budget ran out.
EXHAUSTED = (
    "{what}: the search budget for this block ({budget:,} candidate evaluations, in proportion "
    "to its length) ran out here; suspect runs from here on were not searched, and none in "
    "the block was edited"
)


def exhausted_finding(text: str, at: int, category: Category, what: str, budget: int) -> Proposal:
    """The finding a search stage reports where its budget ran out (at, a position in text):
    what was not searched is said, not silently skipped."""
    at = max(0, min(at, len(text) - 1))
    return Proposal(
        at,
        at + 1,
        text[at : at + 1],
        category,
        EXHAUSTED.format(what=what, budget=budget),
        0.5,
        flag_only=True,
    )


def starve(proposals: list[Proposal]) -> list[Proposal]:
    """proposals as findings only, when the budget ran out before every suspect run was
    searched: editing some would leave the rest to a second repair, which has a budget of
    its own and would edit them then. All or nothing keeps repairing idempotent."""
    return [
        p if p.flag_only else replace(p, reason=p.reason + STARVED, flag_only=True)
        for p in proposals
    ]


def work_done() -> int:
    """Candidate evaluations the phase-slip and wrong-codec searches have spent so far."""
    return Work.total


_FULLWIDTH_MARKS = "！？"
# Where a slip can start: `?` then a (possibly folded) full-width mark, `?` glued to a CJK
# character, or `<Han>?pinyin)` where an annotation was inserted inside a character's bytes.
_TRIGGER_RE = re.compile(
    rf"\?(?=[!?{_FULLWIDTH_MARKS}])"
    rf"|(?<=[^\s?])\?(?=[{PINYIN_LETTERS}]+\))"
    rf"|\?(?=[^\x00-\x7f])"
    rf"|(?<=[^\x00-\x7f])\?(?=[\x21-\x7e])"
)
_TAG_TAIL_RE = re.compile(r"/?[A-Za-z][A-Za-z0-9]{0,9}(?:\s[^<>\n]{0,200})?/?>")


@dataclass(slots=True)
class _State:
    score: float  # character-model log-probability of out, plus channel costs
    pos: int  # index into the text of the next observed character
    pending: tuple[int, ...]  # the possible lead bytes of the next original character
    out: str  # reconstructed text so far
    drops: int  # dropped pairs in a row just before pos
    channel: float
    unread: int = 0  # pairs read as `?` (no character) so far


@dataclass(slots=True)
class SlipRepair:
    """One reconstructed run: text[start:end] should read `replacement`."""

    start: int
    end: int
    replacement: str
    margin: float  # nats the repair scores better than the text as it stands
    gap: float  # nats between the best and the next-best distinct reconstruction
    codec: str
    guessed: bool = False  # a swallowed byte had to be guessed from context alone
    spent: int = 0  # candidate evaluations the search took
    exhausted: bool = False  # the search ran out of budget: report, do not edit


def _lead_bytes(c: Dbcs) -> tuple[int, ...]:
    return tuple(b for b in range(0x81, 0x100) if c.is_lead(b))


def _uda_seconds(c: Dbcs) -> dict[int, tuple[int, ...]]:
    """For each byte that can open a user-defined pair, the bytes that can close it."""
    out: dict[int, tuple[int, ...]] = {}
    for t in range(0x81, 0x100):
        seconds = tuple(b for b in range(0x40, 0x100) if c.in_uda(t, b) and c.is_trail(b))
        if seconds:
            out[t] = seconds
    return out


def _unassigned_seconds(c: Dbcs) -> dict[int, tuple[int, ...]]:
    """For each lead byte, the trail bytes it forms no character with (read as `?`)."""
    out: dict[int, tuple[int, ...]] = {}
    for t in range(0x81, 0x100):
        if not c.is_lead(t):
            continue
        seconds = tuple(
            b
            for b in range(0x40, 0x100)
            if c.is_trail(b) and not c.in_uda(t, b) and (t << 8 | b) not in c.pairs
        )
        if seconds:
            out[t] = seconds
    return out


_Tables = tuple[tuple[int, ...], dict[int, tuple[int, ...]], dict[int, tuple[int, ...]]]
_TABLES: dict[str, _Tables] = {}


def _tables(c: Dbcs) -> _Tables:
    hit = _TABLES.get(c.name)
    if hit is None:
        hit = _TABLES[c.name] = (_lead_bytes(c), _uda_seconds(c), _unassigned_seconds(c))
    return hit


# Memos of the search's candidate lists, by (codec, possible lead bytes, trail byte); entry
# sizes are measured (`cache`), each counted against the process's one cache budget.
_ALL = cache.Memo("slip.all_chars", entry_bytes=ENTRY_BYTES_ALL)


def _all_chars(c: Dbcs, pending: tuple[int, ...], trail: int) -> tuple[str, ...]:
    """Every character (lead in pending, trail) stands for."""
    key = (c.name, pending, trail)
    hit = _ALL.get(key)
    if hit is None:
        pairs = c.pairs
        hit = _ALL.put(
            key, tuple(ch for lead in pending if (ch := pairs.get(lead << 8 | trail)) is not None)
        )
    return hit


_LIKELY = cache.Memo("slip.likely", entry_bytes=ENTRY_BYTES_LIKELY)
PREFILTER = 24
# A swallowed trail byte is unconstrained: more of its characters are scored.
SWALLOW_LIMIT = 400


def _likely_chars(
    c: Dbcs, model: CharModel, pending: tuple[int, ...], trail: int
) -> tuple[str, ...]:
    """The characters (lead in pending, trail) can be, the most frequent first, at most
    PREFILTER of them: the context model then only scores these."""
    key = (c.name, pending, trail)
    hit = _LIKELY.get(key)
    if hit is None:
        found = sorted(
            _all_chars(c, pending, trail), key=lambda ch: _prior(model, ch), reverse=True
        )
        hit = _LIKELY.put(key, tuple(found[:PREFILTER]))
    return hit


def _prior(model: CharModel, ch: str) -> float:
    cls = char_class(ch)
    if cls in ("han", "kana", "hangul"):
        return model.unigram(ch) if model.known(ch) else 0.0
    if cls == "punct":
        return 0.01
    return 1e-7


_SWALLOWERS: dict[str, dict[int, tuple[int, ...]]] = {}


def _swallowers(c: Dbcs, leads: tuple[int, ...]) -> dict[int, tuple[int, ...]]:
    """Bytes that, in lead position, swallow a following byte below 0x40."""
    hit = _SWALLOWERS.get(c.name)
    if hit is None:
        hit = _SWALLOWERS[c.name] = {t: () for t in leads if c.is_trail(t)}
    return hit


_DROPS = cache.Memo("slip.drops", entry_bytes=ENTRY_BYTES_DROPS)
DROP_FROM = 12


def _drop_chars(
    c: Dbcs,
    model: CharModel,
    pending: tuple[int, ...],
    uda: dict[int, tuple[int, ...]],
    limit: int = 0,
) -> tuple[tuple[str, int], ...]:
    """Characters (lead in pending, t) where t opens a user-defined pair that was dropped,
    with t; the most frequent `limit` (default PREFILTER) of them."""
    limit = limit or PREFILTER
    key = (c.name, id(uda), pending, limit)
    hit = _DROPS.get(key)
    if hit is None:
        pairs = c.pairs
        found = [
            (ch, t)
            for t in uda
            if c.is_trail(t)
            for lead in pending
            if (ch := pairs.get(lead << 8 | t)) is not None
        ]
        found.sort(key=lambda x: _prior(model, x[0]), reverse=True)
        hit = _DROPS.put(key, tuple(found[:limit]))
    return hit


_INDEX = cache.Memo("slip.index", entry_bytes=ENTRY_BYTES_INDEX)


def _index(
    c: Dbcs, model: CharModel, pending: tuple[int, ...], seconds: tuple[int, ...] | None, table
) -> dict[str, list[tuple[str, int]]]:
    """Every character (lead in pending, t), keyed by the form the model knows it by; t is a
    given trail byte (seconds) or any key of table (a dropped or unreadable pair)."""
    key = (c.name, pending, seconds, id(table))
    hit = _INDEX.get(key)
    if hit is None:
        hit = {}
        simp = model._simplify
        ts = seconds if seconds is not None else tuple(t for t in table if c.is_trail(t))
        for t in ts:
            for lead in pending:
                ch = c.pairs.get(lead << 8 | t)
                if ch is not None:
                    hit.setdefault(ch.translate(simp) if simp else ch, []).append((ch, t))
        _INDEX.put(key, hit)
    return hit


# Digits after which the digit successors are proposed; after 〇, a Chinese numeral, the word
# list's successors are.
_DIGITS = PLAIN_DIGITS - {"〇"}
# What follows a digit: more digits (full-width, as double-byte text writes them), a decimal
# point, and the counters and units numbers take.
_DIGIT_SUCCESSORS = (*"０１２３４５６７８９．", *sorted(AFTER_DIGIT))


def _with_successors(
    c: Dbcs,
    model: CharModel,
    pending: tuple[int, ...],
    seconds: tuple[int, ...] | None,
    table,
    hist: str,
    base,
):
    """base (the most frequent candidates) plus those that continue a word after the last
    character of hist, or a number after a digit: a wide set of possible lead bytes (after a
    cut or a dropped pair) holds far more characters than the frequency prefilter keeps."""
    if len(pending) <= 4 or not hist:
        return base
    succ = _DIGIT_SUCCESSORS if hist[-1] in _DIGITS else model.successors(hist[-1])
    if not succ:
        return base
    idx = _index(c, model, pending, seconds, table)
    extra = [x for s in succ if (hit := idx.get(s)) for x in hit]
    if not extra:
        return base
    return tuple(dict.fromkeys((*base, *extra)))


_READINGS: dict[str, dict[str, list[tuple[int, str]]]] = {}


def _by_reading(c: Dbcs) -> dict[str, list[tuple[int, str]]]:
    """For each pinyin spelling (tone-marked and toneless), the (lead byte, character) of the
    codec's characters with that reading (pypinyin's table)."""
    hit = _READINGS.get(c.name)
    if hit is None:
        import unicodedata

        from pypinyin.pinyin_dict import pinyin_dict

        hit = {}
        for code, ch in c.pairs.items():
            spell = pinyin_dict.get(ord(ch))
            if not spell:
                continue
            for r in set(spell.split(",")):
                bare = "".join(
                    x for x in unicodedata.normalize("NFD", r) if not unicodedata.combining(x)
                )
                for key in {r, bare}:
                    hit.setdefault(key, []).append((code >> 8, ch))
        _READINGS[c.name] = hit
    return hit


# The bigram shortlist of a long list of options after a character (`_Search.best`).
_SHORTLIST = cache.Memo("slip.shortlist", entry_bytes=ENTRY_BYTES_SHORTLIST)


class _Search:
    """The beam search for one trigger, in one codec, over one text."""

    def __init__(
        self,
        text: str,
        c: Dbcs,
        scorer: Scorer,
        folded: bool,
        budget: int = RUN_BUDGET,
        annotated: Annotated | None = None,
    ) -> None:
        self.budget = budget
        self.annotated = annotated
        self.spent = 0
        self.exhausted = False
        self.text = text
        self.c = c
        self.scorer = scorer
        self.model = scorer.model
        self.trad = scorer.trad
        self.folded = folded
        self.leads, self.uda, self.unassigned = _tables(c)
        self.swallowers = _swallowers(c, self.leads)
        self.lp = scorer.lp

    def chars(self, pending: tuple[int, ...], trail: int, prev: str) -> list[tuple[float, str]]:
        """Original characters (pending lead, trail) could have been, best first, pruned."""
        if len(pending) == 1:
            ch = self.c.pairs.get(pending[0] << 8 | trail)
            self.spent += 1
            return [(self.lp(prev, ch), ch)] if ch is not None else []
        options = _likely_chars(self.c, self.model, pending, trail)
        if len(pending) > 4:
            wide = _with_successors(
                self.c, self.model, pending, (trail,), None, prev, tuple((ch, 0) for ch in options)
            )
            options = tuple(ch for ch, _ in wide)
        return [(lp, ch) for lp, ch, _ in self.best(((ch, 0) for ch in options), prev)]

    def closing(
        self, pending: tuple[int, ...], trail: int, prev: str, nxt: str
    ) -> list[tuple[float, str]]:
        """The last character of a run, whose trail byte put the decoder back in step: like
        `chars`, but when its lead is wide open (the run is that one character, after a cut)
        every character the trail byte can end is weighed, with the in-step character after
        it as well as the ones before: `で?\\わない` is `で構わない`, though 構 is neither
        frequent nor a word's next character after で."""
        if len(pending) <= 4 or not nxt:
            return self.chars(pending, trail, prev)
        options = _all_chars(self.c, pending, trail)
        self.spent += 2 * len(options)
        lp, hn = self.lp, WordModel.HIST
        ranked = sorted(
            ((lp(prev, ch), ch) for ch in options),
            key=lambda x: x[0] + lp((prev + x[1])[-hn:], nxt),
            reverse=True,
        )
        return ranked[:CHILDREN]

    def best(self, options, hist: str) -> list[tuple[float, str, int]]:
        """The CHILDREN best of options (character, byte) after hist, scored in context; a
        long list is first cut down with the cheap character bigrams."""
        options = tuple(options)
        if len(options) > 2 * CHILDREN:
            prev, trad = hist[-1:], self.trad
            key = (options, prev, trad)
            hit = _SHORTLIST.get(key)
            # Charged whether or not the shortlist is cached: the budget must run out at the
            # same place in every process, or a second repair could decide differently.
            self.spent += len(options)
            if hit is None:
                hit = _SHORTLIST.put(
                    key, tuple(self.model.rank(prev, options, trad)[: 2 * CHILDREN])
                )
            options = hit
        self.spent += len(options)
        return self.scorer.top(hist, options, CHILDREN)

    def token(self, ch: str) -> tuple[int, ...] | None:
        """The bytes the misaligned decoder read to produce ch (two, one, or None)."""
        if ch < "\x80":
            return (ord(ch),)
        raw = self.c.encode(ch)
        if raw is None:
            return None
        return tuple(raw)

    def run(self, start: int, pos: int, pending: tuple[int, ...], out: str, channel: float):
        """Search from pos; returns finished (end, out, score, channel) hypotheses."""
        text = self.text
        hn = WordModel.HIST
        left_ctx = text_before(text, start, hn)
        base = self.scorer.score(out, left_ctx) if out else 0.0
        beam = [_State(base + channel, pos, pending, out, 0, channel)]
        done: list[tuple[int, str, float, float]] = []
        limit = min(len(text), pos + MAX_RUN)
        # The text as it stands, scored once, a prefix at a time (kept[k]: text[start:start+k]).
        kept = [0.0]
        hist = left_ctx
        while beam:
            if self.spent >= self.budget:
                self.exhausted = True
                break
            # Dropped user-defined pairs before the observed character at this position: from
            # the best states only, at most two in a row.
            grown = list(beam)
            frontier = sorted(beam, key=lambda s: s.score, reverse=True)[:DROP_FROM]
            for _ in range(2):
                nxt = []
                for st in frontier:
                    last = (left_ctx + st.out)[-hn:]
                    options = _drop_chars(self.c, self.model, st.pending, self.uda)
                    options = _with_successors(
                        self.c, self.model, st.pending, None, self.uda, last, options
                    )
                    scored = self.best(options, last)
                    for lp, ch, t in scored:
                        nxt.append(
                            _State(
                                st.score + lp + P_DROP,
                                st.pos,
                                self.uda[t],
                                st.out + ch,
                                st.drops + 1,
                                st.channel + P_DROP,
                                st.unread,
                            )
                        )
                nxt.sort(key=lambda s: s.score, reverse=True)
                nxt = nxt[: DROP_FROM // 2]
                grown.extend(nxt)
                frontier = nxt
            grown.sort(key=lambda s: s.score, reverse=True)
            beam = []
            for st in grown[:BEAM]:
                if st.pos >= limit:
                    continue
                obs = text[st.pos]
                last = (left_ctx + st.out)[-hn:]
                if obs == "(" and st.pos > start:
                    # An annotation inserted after a key the decoder read as one pair: it
                    # stands in the misaligned run, which goes on after it.
                    m = PINYIN_TAIL_RE.match(text, st.pos + 1)
                    if m and m.group(1) in readings(text[st.pos - 1]):
                        beam.append(
                            _State(st.score, m.end(), st.pending, st.out, 0, st.channel, st.unread)
                        )
                tok = self.token(obs)
                if tok is None:
                    continue
                if len(tok) == 2:
                    for lp, ch in self.chars(st.pending, tok[0], last):
                        beam.append(
                            _State(
                                st.score + lp,
                                st.pos + 1,
                                (tok[1],),
                                st.out + ch,
                                0,
                                st.channel,
                                st.unread,
                            )
                        )
                else:
                    b = tok[0]
                    if self.c.is_single(b) and self.c.is_trail(b):
                        # Resynchronisation: this byte was the trail of an original character.
                        nxt = text[st.pos + 1 : st.pos + 2] if not st.out else ""
                        for lp, ch in self.closing(st.pending, b, last, nxt):
                            done.append((st.pos + 1, st.out + ch, st.score + lp, st.channel))
                    if obs == "?" and st.unread < MAX_UNREADABLE:
                        # A pair that is no character, read as `?`; the run goes on.
                        options = _drop_chars(self.c, self.model, st.pending, self.unassigned)
                        options = _with_successors(
                            self.c, self.model, st.pending, None, self.unassigned, last, options
                        )
                        scored = self.best(options, last)
                        for lp, ch, t in scored:
                            beam.append(
                                _State(
                                    st.score + lp + P_UNASSIGNED,
                                    st.pos + 1,
                                    self.unassigned[t],
                                    st.out + ch,
                                    0,
                                    st.channel + P_UNASSIGNED,
                                    st.unread + 1,
                                )
                            )
                    if obs == "?":
                        # A swallow: (trail, byte below 0x40) read as `?`; the run ends.
                        # When a pinyin tail follows, the swallowed byte was its `(` and the
                        # character it annotates has that reading.
                        tail = PINYIN_TAIL_RE.match(text, st.pos + 1)
                        by_reading = _by_reading(self.c).get(tail.group(1)) if tail else None
                        habit = None
                        if by_reading:
                            pend = set(st.pending)
                            options = [(ch, 0) for lead, ch in by_reading if lead in pend]
                            habit = self.annotated
                        else:
                            options = _drop_chars(
                                self.c, self.model, st.pending, self.swallowers, SWALLOW_LIMIT
                            )
                        for lp, ch, _ in self.best(options, last):
                            # Which character carried the annotation: the converter's table
                            # shows in the document's in-step leaks.
                            cost = P_SWALLOW + (habit.cost(ch) if habit is not None else 0.0)
                            done.append(
                                (
                                    st.pos + 1,
                                    st.out + ch + "\x00",
                                    st.score + lp + cost,
                                    st.channel + cost,
                                )
                            )
                    if self.folded and 0x21 <= b <= 0x7E:
                        fw = self.c.encode(chr(b + 0xFEE0))
                        if fw is not None and len(fw) == 2:
                            for lp, ch in self.chars(st.pending, fw[0], last):
                                beam.append(
                                    _State(
                                        st.score + lp,
                                        st.pos + 1,
                                        (fw[1],),
                                        st.out + ch,
                                        0,
                                        st.channel,
                                        st.unread,
                                    )
                                )
                    elif 0xA1 <= b <= 0xDF and self.c.name == "shift_jis":
                        pass
            if len(beam) > BEAM:
                beam.sort(key=lambda s: s.score, reverse=True)
                beam = beam[:BEAM]
            if beam:
                # Give up early when re-phasing reads far worse than the text as it stands:
                # what genuine text looks like, and most of the cost on clean documents.
                best = max(beam, key=lambda s: s.score)
                if best.pos - start >= 4:
                    while len(kept) <= best.pos - start:
                        ch = text[start + len(kept) - 1]
                        kept.append(kept[-1] + self.scorer.lp(hist, ch))
                        hist = (hist + ch)[-hn:]
                    if best.score - kept[best.pos - start] < -ABORT_MARGIN:
                        break
                    if len(
                        best.out
                    ) >= NOISE_AFTER and best.score - best.channel < NOISE_FLOOR * len(best.out):
                        # Re-phased, it reads no better than noise: so did the text before.
                        break
            if len(done) > 4 * BEAM:
                done = _best_per_end(done)
        return _best_per_end(done)


# Finished readings kept for each place a run can end. Readings that end at different places
# do not compete before the text after them is scored: a shorter one always has the higher
# log-probability so far.
DONE_PER_END = 12


def _best_per_end(
    done: list[tuple[int, str, float, float]],
) -> list[tuple[int, str, float, float]]:
    """The DONE_PER_END best finished readings for each end position; of readings that end
    alike (the same end, the same last characters the text after them is scored on), only the
    best: what follows scores the same after each of them."""
    done.sort(key=lambda d: (d[0], d[2]), reverse=True)
    out: list[tuple[int, str, float, float]] = []
    end, kept = -1, 0
    seen: set[str] = set()
    for d in done:
        if d[0] != end:
            end, kept = d[0], 0
            seen.clear()
        tail = d[1][-WordModel.HIST :]
        if kept < DONE_PER_END and tail not in seen:
            seen.add(tail)
            out.append(d)
            kept += 1
    return out


def _after_swallow(text: str, end: int, out: str) -> tuple[int, str, float] | None:
    """Decide what a swallowed byte was from what follows it; returns the new end, the output
    and the score bonus. A pinyin reading of the last character after it means `(`, and the
    annotation goes; a tag's remainder means `<`, and the tag goes."""
    host = out[-1] if out else ""
    m = PINYIN_TAIL_RE.match(text, end)
    if m and host:
        syl = m.group(1)
        if syl in readings(host):
            return m.end(), out, 0.0
    m = _TAG_TAIL_RE.match(text, end)
    if m:
        return m.end(), out, 0.0
    return None


_OPEN_CLOSE = {"“": "”", "「": "」", "『": "』", "《": "》", "（": "）"}
_CLOSERS = {v: k for k, v in _OPEN_CLOSE.items()}
# Marks a paragraph usually ends on (before any closing quote).
_SENTENCE_END = frozenset("。！？!?…．.")


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
                cost += math.log(0.1)
    if line_ends:
        if any(not m.startswith(_CARRIED) for m in stack):
            # A paragraph left with a bracket or quotation open (one not carried over from
            # the paragraphs before) is rarer still than a stray closing mark.
            cost += math.log(0.01)
        body = piece.rstrip("".join(_CLOSERS))
        if body and body[-1] not in _SENTENCE_END:
            cost += math.log(0.2)
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


def _swallowed_guess(scorer: Scorer, out: str, nxt: str) -> tuple[str, float]:
    """The ASCII character a lossy decoder most likely swallowed between out and nxt."""
    last = out[-WordModel.HIST :]
    key = ("swallowed", last, nxt)
    hit = scorer.derived.get(key)
    if hit is not None:
        return hit
    best = ("", -1e9)
    for x in " ,.:;!\"'-()0123456789<":
        s = scorer.lp(last, x) + (scorer.lp((last + x)[-WordModel.HIST :], nxt) if nxt else 0.0)
        if s > best[1]:
            best = (x, s)
    scorer.derived[key] = best
    return best


def repair_at(
    text: str,
    i: int,
    c: Dbcs,
    model: CharModel,
    traditional: bool | None,
    folded: bool,
    scorer: Scorer | None = None,
    budget: int = RUN_BUDGET,
    work: Work | None = None,
    annotated: Annotated | None = None,
) -> SlipRepair | None:
    """The best re-phased reading of the run that starts at the `?` text[i], or None.

    The search spends at most about `budget` candidate evaluations (`SlipRepair.spent`); one
    that runs out returns what it found marked `exhausted`, to be reported, not applied.
    `annotated` is what the document's own pinyin leaks show of the converter's table."""
    if scorer is None:
        scorer = Scorer(model, traditional)
    # Not for documents with annotation habits: the key would have to hold them, and a
    # document's habits are as large as its set of characters.
    cacheable = scorer.plain and annotated is None
    key = _first_look_key(text, i, c, scorer, folded) if cacheable else None
    if key is not None:
        hit = _FIRST_LOOKS.get(key)
        # A search that did not run out of budget reads the same under any budget above what
        # it spent; one that ran out, only under the same budget.
        if hit is not None and (hit.budget == budget or (not hit.exhausted and hit.spent < budget)):
            # Charged as if searched again: the cache changes the cost, never the result.
            Work.total += hit.spent
            if work is not None:
                work.spent += hit.spent
            if hit.repair is None:
                return None
            return replace(hit.repair, start=i, end=i + hit.repair.end)
    search = _Search(text, c, scorer, folded, budget, annotated)
    try:
        rep = _repair_at(text, i, c, folded, scorer, search)
    finally:
        Work.total += search.spent
        if work is not None:
            work.spent += search.spent
    if rep is not None:
        rep.spent = search.spent
        rep.exhausted = search.exhausted
    if key is not None:
        relative = None if rep is None else replace(rep, start=0, end=rep.end - i)
        _FIRST_LOOKS.put(key, _FirstLook(relative, search.spent, budget, search.exhausted))
    return rep


@dataclass(frozen=True, slots=True)
class _FirstLook:
    repair: SlipRepair | None  # positions relative to the trigger
    spent: int
    budget: int
    exhausted: bool


# First looks (searches with the plain bigram scorer, which reads nothing of a document
# without annotation habits beyond the text around the trigger) by all they read: the
# engine's later passes and a second repair look at most triggers again, in text that did
# not change around them. Per process and unlocked: a race costs a repeated search, not a
# wrong result. An entry holds up to _READ_AHEAD characters of text.
_FIRST_LOOKS = cache.Memo("slip.first_looks", entry_bytes=ENTRY_BYTES_FIRST_LOOK)
# How far past the trigger a search reads: an annotation the trigger cut (a pinyin tail, at
# most 8 syllables), the run (MAX_RUN), annotations within and after it, what a swallowed
# byte took (a tag's remainder, up to 214 characters) and the two characters after the run.
_READ_AHEAD = MAX_RUN + 512


def _first_look_key(text: str, i: int, c: Dbcs, scorer: Scorer, folded: bool) -> tuple:
    """What a first look at the trigger text[i], in a document with no annotation habits,
    depends on besides its budget: the codec, the model and script, the folding, the text
    before the trigger as the search reads it (without leaked annotations), the character
    just before it, the paired marks open there, and the text after it up to what the search
    can read (and whether the text ends there)."""
    end = i + _READ_AHEAD
    return (
        c.name,
        scorer.model.lang,
        scorer.trad,
        folded,
        text_before(text, i, WordModel.HIST),
        text[i - 1 : i] if i else None,
        tuple(open_quotes(text, i)),
        text[i:end],
        end >= len(text),
    )


def _repair_at(
    text: str, i: int, c: Dbcs, folded: bool, scorer: Scorer, search: _Search
) -> SlipRepair | None:
    starts: list[tuple[int, tuple[int, ...], float]] = []
    m = PINYIN_TAIL_RE.match(text, i + 1)
    if m and i > 0:
        # `<Han>?pinyin)`: the annotation was inserted inside a character's bytes; the `?` is
        # the lead it cut off, whose pair with the host's trail byte has that reading.
        host = text[i - 1]
        if folded and "\x21" <= host <= "\x7e":
            # A folded full-width form (`１`, `，`) whose trail byte the key began with.
            host = chr(ord(host) + 0xFEE0)
        raw = c.encode(host)
        if raw is not None and len(raw) == 2:
            leads = tuple(
                b
                for b in search.leads
                if (ch := c.pairs.get(raw[1] << 8 | b)) and m.group(1) in readings(ch)
            )
            if leads:
                starts.append((m.end(), leads, P_SWALLOW))
    starts.append((i + 1, search.leads, P_CUT))
    finished: list[tuple[float, int, str, float, int]] = []
    for pos, pending, channel in starts:
        for end, out, score, chan in search.run(i, pos, pending, "", channel):
            finished.append((score, end, out, chan, pos))
    if not finished:
        return None
    results: list[tuple[float, int, str, float, bool]] = []
    left = text_before(text, i, WordModel.HIST)
    stack = open_quotes(text, i)
    kept_at: dict[int, float] = {}
    for score, end, out, _chan, _pos in finished:
        new_end = end
        guessed = False
        wide, markup = _run_evidence(text, i, end)
        if markup:
            continue
        if out.endswith("\x00"):
            out = out[:-1]
            fit = _after_swallow(text, end, out)
            if fit is None:
                nxt = text[end] if end < len(text) else ""
                if nxt in ("", "\n"):
                    # Nothing after the `?` could have followed the swallowed byte.
                    continue
                x, _ = _swallowed_guess(scorer, out, nxt)
                out = out + x
                guessed = True
            else:
                new_end, out, _ = fit
        if not wide and new_end == end:
            # Nothing in the run was misread double-byte text, and no tag or annotation went
            # with a swallowed byte: `?` and `!` alone are punctuation, not evidence.
            continue
        tail = text_after(text, new_end, 2, out[-1:])
        line_ends = new_end >= len(text) or text[new_end] == "\n"
        repaired = score + scorer.score(tail, left + out) + pairing_cost(stack, out, line_ends)
        kept = kept_at.get(new_end)
        if kept is None:
            as_is = text[i:new_end] + text_after(text, new_end, 2, text[new_end - 1])
            kept = kept_at[new_end] = scorer.score(as_is, left)
            search.spent += new_end - i + len(tail)
        kept += pairing_cost(stack, text[i:new_end], line_ends)
        search.spent += len(tail)
        results.append((repaired - kept, new_end, out, score, guessed))
    results.sort(key=lambda r: r[0], reverse=True)
    if not results:
        return None
    margin, end, out, _, guessed = results[0]
    gap = 20.0
    for other in results[1:]:
        if other[2] != out or other[1] != end:
            gap = margin - other[0]
            break
    replacement = fold_width(out) if folded else out
    return SlipRepair(i, end, replacement, margin, gap, c.name, guessed)


_RUBY_IN_RUN_RE = re.compile(rf"\(?[{PINYIN_LETTERS}1-5]+\)")
_RUBY_GROUP_RE = re.compile(rf"\([{PINYIN_LETTERS}1-5]{{1,8}}\)")
_CJK_MARKS = frozenset("“”‘’…—·・")
_NOT_BEFORE_SLIP = frozenset("?!<>\"'=/&;")


def _run_evidence(text: str, i: int, end: int) -> tuple[int, bool]:
    """What the observed run text[i:end] holds after the trigger (and the folded mark right
    after it): how many characters that a misaligned decoder makes (non-ASCII characters, and
    ASCII in the trail-byte range 0x40-0x7E, letters above all), and whether it is markup or
    mostly other ASCII punctuation, which is never re-phased into Han."""
    a = i + 2 if text[i + 1 : i + 2] in ("!", "?") else i + 1
    body = _RUBY_IN_RUN_RE.sub("", text[a:end])
    made = sum(1 for ch in body if ch >= "\x40")
    punct = sum(1 for ch in body if "\x21" <= ch < "\x40" and ch != "?")
    return made, "<" in body or ">" in body or punct > made


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
    before = _RUBY_GROUP_RE.sub("", text[max(0, i - 24) : i])
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


def candidate_positions(text: str) -> list[int]:
    """Positions of `?` that could open a slip (the cheap pre-check)."""
    if "?" not in text:
        return []
    return [m.start() for m in _TRIGGER_RE.finditer(text)]


# How many characters before a trigger `reads_as_noise` weighs, and the fewest distinct ones
# it judges on. Eight: the window `looks_improbable` reads after a trigger. Measured on the
# eight characters before each searched trigger as they stand: on 20 dense generated documents
# (`bench/cjk_bench.py --dense`) every trigger whose search found a repair followed text
# averaging -8.3 nats or better under the character bigrams (median -5.5), while the triggers
# of the adversarial corpus's random mixes (`bench/adversarial.py`, 100 B to 10 KB) follow
# -11 to -20 (medians -13 to -14); the cut is NOISE_FLOOR (-10). With the rule as written
# (ASCII left out, a reported run read as its suggestion) the sample article, tests/cases and
# 120 generated documents repair exactly as before it.
NOISE_CONTEXT = 8
NOISE_CONTEXT_MIN = 3


def reads_as_noise(text: str, i: int, model: CharModel, traditional: bool | None) -> bool:
    """Whether the text just before the trigger text[i] reads as random characters (averages
    below NOISE_FLOOR nats a character under the character bigrams, leaked annotations
    aside): text a decoder read in step is the language, so no slip starts after noise, and
    a search there only spends budget (issue 16's random Unicode and Han-and-`?` mixes).

    >>> from textmend_server.cjk.lm import get_model
    >>> m = get_model("zh")
    >>> reads_as_noise("他們說公司?!彼Q", 5, m, True), reads_as_noise("唫剈低冉圁匎?", 6, m, False)
    (False, True)
    >>> reads_as_noise("乤?吭?堡?喲?凌?", 9, m, False)
    True
    """
    # ASCII is left out: `?` between random characters reads as a plausible neighbour of any
    # of them (`字?字?`), and digits, folded marks and entities say nothing of whether the
    # characters around them are the language.
    left = text_before(text, i, 3 * NOISE_CONTEXT)
    left = left[left.rfind("\n") + 1 :]
    left = "".join(ch for ch in left if not ch.isascii())[-NOISE_CONTEXT - 1 :]
    if len(set(left)) < NOISE_CONTEXT_MIN:
        # Too little to judge, or one character repeated, which the bigrams cannot tell from
        # noise: a wall of one GBK character re-phased is left to the search, whose growth
        # rule reports it (tests/test_properties.py).
        return False
    total = 0.0
    for prev, ch in pairwise(left):
        total += model.logp(prev, ch, traditional)
    return total < NOISE_FLOOR * (len(left) - 1)


def looks_improbable(text: str, i: int, model: CharModel, traditional: bool | None) -> bool:
    """Whether the few characters after text[i] hold something improbable for the language:
    a rare character, kana or bopomofo among Han, or a lone Latin letter."""
    window = text[i + 1 : i + 9]
    prev = text[i - 1] if i > 0 else ""
    if text[i + 1 : i + 2] in ("!", "?", "！", "？"):
        return True
    for ch in window:
        cls = char_class(ch)
        if cls in ("bopomofo", "pua") or (cls == "kana" and model.lang != "ja"):
            return True
        if cls == "latin" and ch.isascii():
            return True
        if model.logp(prev, ch, traditional) < -11.5:
            return True
        prev = ch
    return False
