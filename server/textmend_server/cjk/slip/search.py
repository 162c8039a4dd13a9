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
from collections.abc import Iterable
from dataclasses import dataclass, replace

from textmend_server import cache
from textmend_server.cjk.budget import DEFAULT_BUDGET, Work, charge
from textmend_server.cjk.dbcs import Dbcs
from textmend_server.cjk.lm import CharModel, Scorer, WordModel
from textmend_server.cjk.ruby import PINYIN_TAIL_RE, Annotated, readings
from textmend_server.cjk.scripts import PINYIN_LETTERS, fold_width
from textmend_server.cjk.slip.candidates import (
    SWALLOW_LIMIT,
    Options,
    Seconds,
    all_chars,
    by_reading,
    drop_chars,
    likely_chars,
    swallowers,
    tables,
    with_successors,
)
from textmend_server.cjk.slip.context import (
    NOISE_AFTER,
    NOISE_FLOOR,
    open_quotes,
    pairing_cost,
    text_after,
    text_before,
)

# Bytes one entry of each memo holds, estimated as `candidates.ENTRY_BYTES_ALL` is.
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
# The gap (nats) of a reading no other competes with: as sure as a gap gets, the cap the
# stage's confidence puts on it (`stage.confidence`).
MAX_GAP = 20.0
# Pairs no character stands for (read as `?`) end a run after MAX_UNREADABLE of them: real
# slips hold one or two, a wall of `?` is not text. (A search's work limit, `run_budget`, is
# the caller's: `cjk.budget`.)
MAX_UNREADABLE = 2


@dataclass(slots=True)
class _State:
    score: float  # character-model log-probability of out, plus channel costs
    pos: int  # index into the text of the next observed character
    pending: tuple[int, ...]  # the possible lead bytes of the next original character
    out: str  # reconstructed text so far
    drops: int  # dropped pairs in a row just before pos
    channel: float
    unread: int = 0  # pairs read as `?` (no character) so far
    lost: int = 0  # characters of out whose pair was lost whole (dropped, unreadable, swallowed)

    def then(
        self,
        lp: float,
        ch: str,
        pos: int,
        pending: tuple[int, ...],
        cost: float = 0.0,
        drops: int = 0,
        unread: int = 0,
        lost: int = 0,
    ) -> _State:
        """The state after reading ch (log-probability lp, channel cost cost) with pos the next
        observed character and pending the possible lead bytes of the next original one; lost
        is 1 when no byte of ch was read."""
        return _State(
            self.score + lp + cost,
            pos,
            pending,
            self.out + ch,
            drops,
            self.channel + cost,
            self.unread + unread,
            self.lost + lost,
        )


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
    # Characters of the reading whose pair was lost whole (dropped, unreadable, swallowed):
    # the model alone chose them (`stage.confidence`).
    lost: int = 0


# Dropped pairs are tried from the DROP_FROM best states before each observed character.
DROP_FROM = 12

# The bigram shortlist of a long list of options after a character (`_Search.best`).
_SHORTLIST = cache.Memo("slip.shortlist", entry_bytes=ENTRY_BYTES_SHORTLIST)

# What `_Search.top` weighs: the evaluations a shortlist costs, and the shortlist.
Choices = tuple[int, Options]
# The `Choices` of `_Search.chars` and `_Search.lost` by all their candidate lists depend on:
# the codec, the model and script, the possible lead bytes, the trail byte or the table of
# lost pairs, and the character before. The search asks for the same ones at every state
# with the same pending bytes and last character; this skips building the lists and hashing
# them whole as the shortlist's key. An entry holds what a shortlist's does.
_CHOICES = cache.Memo("slip.choices", entry_bytes=ENTRY_BYTES_SHORTLIST)


# A finished reading of a run: (end, out, score, channel, lost), as in `_State`.
Finished = tuple[int, str, float, float, int]


class _Search:
    """The beam search for one trigger, in one codec, over one text."""

    def __init__(
        self,
        text: str,
        c: Dbcs,
        scorer: Scorer,
        folded: bool,
        budget: int = DEFAULT_BUDGET.run_budget,
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
        self.leads, self.uda, self.unassigned = tables(c)
        self.swallowers = swallowers(c, self.leads)
        self.lp = scorer.lp

    def chars(self, pending: tuple[int, ...], trail: int, prev: str) -> list[tuple[float, str]]:
        """Original characters (pending lead, trail) could have been, best first, pruned."""
        if len(pending) == 1:
            ch = self.c.pairs.get(pending[0] << 8 | trail)
            self.spent += 1
            return [(self.lp(prev, ch), ch)] if ch is not None else []
        key = (self.c.name, self.model.lang, self.trad, pending, trail, prev[-1:])
        hit = _CHOICES.get(key)
        if hit is None:
            options = likely_chars(self.c, self.model, pending, trail)
            if len(pending) > 4:
                wide = with_successors(
                    self.c,
                    self.model,
                    pending,
                    (trail,),
                    None,
                    prev,
                    tuple((ch, 0) for ch in options),
                )
                options = tuple(ch for ch, _ in wide)
            hit = _CHOICES.put(key, self.shortlist(tuple((ch, 0) for ch in options), prev))
        return [(lp, ch) for lp, ch, _ in self.top(hit, prev)]

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
        options = all_chars(self.c, pending, trail)
        self.spent += 2 * len(options)
        lp, hn = self.lp, WordModel.HIST
        ranked = sorted(
            ((lp(prev, ch), ch) for ch in options),
            key=lambda x: x[0] + lp((prev + x[1])[-hn:], nxt),
            reverse=True,
        )
        return ranked[:CHILDREN]

    def lost(
        self, pending: tuple[int, ...], table: Seconds, last: str
    ) -> list[tuple[float, str, int]]:
        """The best characters after last for a pair that was lost: (lead in pending, t)
        where t opens a pair of table (a dropped user-defined pair, or one that is no
        character), with t."""
        key = (self.c.name, self.model.lang, self.trad, pending, id(table), last[-1:])
        hit = _CHOICES.get(key)
        if hit is None:
            options = drop_chars(self.c, self.model, pending, table)
            options = with_successors(self.c, self.model, pending, None, table, last, options)
            hit = _CHOICES.put(key, self.shortlist(options, last))
        return self.top(hit, last)

    def best(self, options: Iterable[tuple[str, int]], hist: str) -> list[tuple[float, str, int]]:
        """The CHILDREN best of options (character, byte) after hist, scored in context; a
        long list is first cut down with the cheap character bigrams."""
        return self.top(self.shortlist(tuple(options), hist), hist)

    def shortlist(self, options: Options, hist: str) -> Choices:
        """What `top` weighs of options after hist: the options themselves or, of a long
        list, its best by the cheap character bigrams after hist's last character; with the
        evaluations that cost."""
        if len(options) <= 2 * CHILDREN:
            return len(options), options
        prev, trad = hist[-1:], self.trad
        key = (options, prev, trad)
        hit = _SHORTLIST.get(key)
        if hit is None:
            hit = _SHORTLIST.put(key, tuple(self.model.rank(prev, options, trad)[: 2 * CHILDREN]))
        return len(options) + len(hit), hit

    def top(self, choices: Choices, hist: str) -> list[tuple[float, str, int]]:
        """The CHILDREN best of a `shortlist` after hist, scored in context, charged as the
        shortlist says: whether or not it was cached, so that the budget runs out at the same
        place in every process (or a second repair could decide differently)."""
        spent, options = choices
        self.spent += spent
        return self.scorer.top(hist, options, CHILDREN)

    def token(self, ch: str) -> tuple[int, ...] | None:
        """The bytes the misaligned decoder read to produce ch (two, one, or None)."""
        if ch < "\x80":
            return (ord(ch),)
        raw = self.c.encode(ch)
        if raw is None:
            return None
        return tuple(raw)

    def run(
        self, start: int, pos: int, pending: tuple[int, ...], out: str, channel: float
    ) -> list[Finished]:
        """Search from pos; returns finished (end, out, score, channel, lost) hypotheses."""
        text = self.text
        hn = WordModel.HIST
        left_ctx = text_before(text, start, hn)
        base = self.scorer.score(out, left_ctx) if out else 0.0
        beam = [_State(base + channel, pos, pending, out, 0, channel)]
        done: list[Finished] = []
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
                    for lp, ch, t in self.lost(st.pending, self.uda, last):
                        nxt.append(
                            st.then(lp, ch, st.pos, self.uda[t], P_DROP, st.drops + 1, lost=1)
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
                        beam.append(st.then(0.0, "", m.end(), st.pending))
                tok = self.token(obs)
                if tok is None:
                    continue
                if len(tok) == 2:
                    for lp, ch in self.chars(st.pending, tok[0], last):
                        beam.append(st.then(lp, ch, st.pos + 1, (tok[1],)))
                else:
                    b = tok[0]
                    if self.c.is_single(b) and self.c.is_trail(b):
                        # Resynchronisation: this byte was the trail of an original character.
                        nxt = text[st.pos + 1 : st.pos + 2] if not st.out else ""
                        for lp, ch in self.closing(st.pending, b, last, nxt):
                            done.append(
                                (
                                    st.pos + 1,
                                    st.out + ch,
                                    st.score + lp,
                                    st.channel,
                                    st.lost,
                                )
                            )
                    if obs == "?" and st.unread < MAX_UNREADABLE:
                        # A pair that is no character, read as `?`; the run goes on.
                        for lp, ch, t in self.lost(st.pending, self.unassigned, last):
                            pend = self.unassigned[t]
                            beam.append(
                                st.then(lp, ch, st.pos + 1, pend, P_UNASSIGNED, unread=1, lost=1)
                            )
                    if obs == "?":
                        # A swallow: (trail, byte below 0x40) read as `?`; the run ends.
                        # When a pinyin tail follows, the swallowed byte was its `(` and the
                        # character it annotates has that reading.
                        tail = PINYIN_TAIL_RE.match(text, st.pos + 1)
                        spelled = by_reading(self.c).get(tail.group(1)) if tail else None
                        habit = None
                        options: Options | list[tuple[str, int]]
                        if spelled:
                            leads = set(st.pending)
                            options = [(ch, 0) for lead, ch in spelled if lead in leads]
                            habit = self.annotated
                        else:
                            options = drop_chars(
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
                                    st.lost + 1,
                                )
                            )
                    if self.folded and 0x21 <= b <= 0x7E:
                        fw = self.c.encode(chr(b + 0xFEE0))
                        if fw is not None and len(fw) == 2:
                            for lp, ch in self.chars(st.pending, fw[0], last):
                                beam.append(st.then(lp, ch, st.pos + 1, (fw[1],)))
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


def _best_per_end(done: list[Finished]) -> list[Finished]:
    """The DONE_PER_END best finished readings for each end position; of readings that end
    alike (the same end, the same last characters the text after them is scored on), only the
    best: what follows scores the same after each of them."""
    done.sort(key=lambda d: (d[0], d[2]), reverse=True)
    out: list[Finished] = []
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


# What follows a swallowed `<`: the rest of a tag (its name, attributes, and `>`).
_TAG_TAIL_RE = re.compile(r"/?[A-Za-z][A-Za-z0-9]{0,9}(?:\s[^<>\n]{0,200})?/?>")


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
    budget: int = DEFAULT_BUDGET.run_budget,
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
            charge(work, hit.spent)
            if hit.repair is None:
                return None
            return replace(hit.repair, start=i, end=i + hit.repair.end)
    search = _Search(text, c, scorer, folded, budget, annotated)
    try:
        rep = _repair_at(text, i, c, folded, scorer, search)
    finally:
        charge(work, search.spent)
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


# A reading of a run, as `ranked_readings` ranks them: (margin over the text as it stands, end of
# the run it replaces, the reading, whether a swallowed byte was guessed, characters lost).
Reading = tuple[float, int, str, bool, int]


def _repair_at(
    text: str, i: int, c: Dbcs, folded: bool, scorer: Scorer, search: _Search
) -> SlipRepair | None:
    """repair_at's search: the best of `ranked_readings`, with its margin and its gap over
    the next distinct reading."""
    results = ranked_readings(text, i, c, folded, scorer, search)
    if not results:
        return None
    margin, end, out, guessed, lost = results[0]
    gap = MAX_GAP
    for other in results[1:]:
        if other[2] != out or other[1] != end:
            gap = margin - other[0]
            break
    replacement = fold_width(out) if folded else out
    return SlipRepair(i, end, replacement, margin, gap, c.name, guessed, lost=lost)


def ranked_readings(
    text: str, i: int, c: Dbcs, folded: bool, scorer: Scorer, search: _Search
) -> list[Reading]:
    """Every reading of the run from the trigger text[i] (after a cut, and after a swallow
    where a pinyin tail follows), each weighed with the text after it against the text as it
    stands, best first."""
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
    finished: list[tuple[float, int, str, int]] = []
    for pos, pending, channel in starts:
        for end, out, score, _chan, lost in search.run(i, pos, pending, "", channel):
            finished.append((score, end, out, lost))
    if not finished:
        return []
    results: list[Reading] = []
    left = text_before(text, i, WordModel.HIST)
    stack = open_quotes(text, i)
    kept_at: dict[int, float] = {}
    for score, end, out, lost in finished:
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
        results.append((repaired - kept, new_end, out, guessed, lost))
    results.sort(key=lambda r: r[0], reverse=True)
    return results


_RUBY_IN_RUN_RE = re.compile(rf"\(?[{PINYIN_LETTERS}1-5]+\)")


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
