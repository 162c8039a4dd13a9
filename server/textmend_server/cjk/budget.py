"""What the CJK searches may spend, and what they report when it runs out.

The phase-slip search (`cjk.slip`) and the wrong-codec fill search (`cjk.codecrun`) count
their work in candidate evaluations: a character scored in context, or ranked by the cheap
bigrams before that. Each call of a stage (the engine calls once per block of about 16K code
points) gets a budget in proportion to the length of its text, so the cost grows linearly
with the text however it is built. The limits are fields of `SearchBudget`, a frozen
configuration a caller passes to the stage (`find_phase_slips(text, budget)`); the defaults
are the values below. Nothing here is changed at run time: a caller that wants other limits
passes another `SearchBudget`.

When a budget runs out before every suspect run was searched, nothing in the block is edited
(`starve`) and the place is reported as a finding (`exhausted_finding`): what was not
searched is said, not silently skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from textmend_server.edits import Proposal
from textmend_server.policy import Category

# Why searches that repair are not charged to the length's budget: a page dense with real
# slips needs several times what its length gives (the benchmark's dense simplified documents,
# 2,000-3,000 characters with about 90 repairs each, up to 4 million evaluations; 110 slips in
# 18,000 characters about 3 million). Issue 16 cut the floor from 800,000 to 150,000, and 3 of
# 60 such documents (seeds 31, 42 and 51 of `bench/cjk_bench.py --dense`) then lost 5-11
# repairs each to a budget spent on the searches that found them. Text built to waste work has
# no repair to show for it, so it still gets only what its length gives.

# Code points of the engine's blocks (its `BLOCK`): what the call ceiling is sized for.
BLOCK_CHARS = 16_384


@dataclass(frozen=True, slots=True)
class SearchBudget:
    """The work limits of the CJK search stages, in candidate evaluations; the defaults are
    the service's, each with where its value comes from.

    What one call of a search stage (per block of text) may spend, `for_call`: a floor for the
    searches a single damaged run needs, plus a share per character, never more than
    `max_per_char` per character (so that a short text does not get the whole floor) nor
    `call_ceiling` per block. The phase-slip stage searches at most `max_searches` trigger
    positions a call; the searches that end without a repair applied spend at most the call's
    budget between them, and all searches together, repairs or not, at most `earned_cap` times
    that (never more than `earned_cap * call_ceiling` for a full block). Each search is held to
    `run_budget`, and one that runs out is reported, not edited; positions left when a budget
    is gone are not searched.

    >>> SearchBudget().for_call(12), SearchBudget(search_floor=0).for_call(100)
    (48000, 6000)
    """

    # One slip running 28 characters (a folded digit run with an annotation, in
    # tests/test_cjk.py) spends 126,000 evaluations; a sentence of 25-31 characters holding one
    # short slip 24,000 (a first look and a full search in two codecs). The floor was 800,000
    # until issue 16: 565 bytes of random Unicode spent it in full, 0.6 s.
    search_floor: int = 150_000
    # What a page of slips needs beyond the floor (repairs applied earn more,
    # `earned_per_repair`).
    budget_per_char: int = 60
    # Genuine short questions spend up to 3,000 a character (`為什麼??`: 14,000 for 5), and
    # must be searched in full, or clean text would be reported as not searched.
    max_per_char: int = 4_000
    # The floor and the share of a full block of BLOCK_CHARS.
    call_ceiling: int = 150_000 + 60 * BLOCK_CHARS
    # A fill evaluation (`cjk.codecrun`) costs several times a phase-slip one, and a run that
    # re-decodes needs at most ~850 of them per character of the run on the benchmark: a
    # tighter cap per character.
    fill_per_char: int = 1_000
    # The fill searches' own floor and share (`for_fills`): an evaluation there costs about
    # 20 µs, and the slip searches' floor and share let a page of U+FFFD among Han characters
    # spend a million of them a block (22 s). On the benchmark's codec pairs
    # (`bench/cjk_bench.py --only codec`, seed 90210) a sample's runs need at most 21,000 (GBK
    # read as Big5: 123 characters, 169 a character); Big5 read as GBK spends what it is given
    # and restores 2 runs in 16 (as with 150,000). The floor pays for one such run a block
    # (12,000 lost GBK read as Big5 5 runs of 22); the share, 4 a character (80 µs, about 27
    # µs a byte of CJK), for the runs of a long page. 10 KB of U+FFFD among Han
    # (`bench/adversarial.py`'s `fffd_han`) then costs 72 µs a byte (5 s before), 100 KB 33.
    fill_floor: int = 25_000
    fill_budget_per_char: int = 4
    # One phase-slip search (a trigger, a codec, a scorer) that spends this stops, and whatever
    # it found is only reported, never edited.
    run_budget: int = 300_000
    # Trigger positions searched per call: the benchmark's densest pages hold about one slip
    # per 160 characters, about 100 a block; 256 leaves room for the genuine `?` between them
    # (chosen, not measured).
    max_searches: int = 256
    # What each repair applied earns the searches that find nothing (up to the ceiling): a page
    # of slips has triggers between them that are genuine `?`.
    earned_per_repair: int = 60_000
    # All searches of a call together, repairs or not, spend at most this many times the
    # call's budget.
    earned_cap: int = 8

    @classmethod
    def flat(cls, per_call: int, **limits: int) -> SearchBudget:
        """A budget of per_call for every call whatever its text's length (no floor, share or
        cap beyond it), with other limits as given: what a test of running out wants.

        >>> SearchBudget.flat(500).for_call(3), SearchBudget.flat(500).for_call(10**6)
        (500, 500)
        """
        return cls(
            search_floor=per_call,
            budget_per_char=0,
            max_per_char=per_call,
            call_ceiling=per_call,
            fill_floor=per_call,
            fill_budget_per_char=0,
            **limits,
        )

    def for_fills(self, length: int) -> int:
        """What one call of the wrong-codec stage may spend on its fill searches, for a text
        of length code points: `fill_floor` and `fill_budget_per_char` a character, at most
        `fill_per_char` a character and never more than the ceiling.

        >>> SearchBudget().for_fills(12), SearchBudget().for_fills(10_000)
        (12000, 65000)
        """
        return min(
            self.call_ceiling,
            self.fill_floor + self.fill_budget_per_char * length,
            self.fill_per_char * length,
        )

    def for_call(self, length: int, per_char: int | None = None) -> int:
        """What one call may spend on a text of length code points: the floor and a share
        per character, at most per_char (default `max_per_char`) for each and never more than
        the ceiling."""
        cap = self.max_per_char if per_char is None else per_char
        return min(
            self.call_ceiling, self.search_floor + self.budget_per_char * length, cap * length
        )


DEFAULT_BUDGET = SearchBudget()


def call_budget(length: int, per_char: int | None = None) -> int:
    """How many candidate evaluations one call may spend on a text of length code points under
    the default budget, at most per_char for each (default `max_per_char`) and never more than
    its `call_ceiling`.

    >>> call_budget(12), call_budget(10_000), call_budget(50, per_char=500)
    (48000, 750000, 25000)
    """
    return DEFAULT_BUDGET.for_call(length, per_char)


class Work:
    """Candidate evaluations spent by one call of a stage (`spent`, checked against its
    budget), and where its budget ran out. Every charge is also added to a process-wide tally
    (`work_done`), which tests and benches read to measure what a repair cost; no search
    reads it to decide anything."""

    total = 0

    def __init__(self) -> None:
        self.spent = 0
        # Where in the text the budget ran out (-1: it did not): reported as a finding.
        self.starved_at = -1

    def note_starved(self, at: int, budget: int) -> None:
        """Remember at as where the budget ran out, the first time the spending passes it."""
        if self.spent > budget and self.starved_at < 0:
            self.starved_at = at


def charge(work: Work | None, n: int) -> None:
    """Count n evaluations against work (when the caller passed one) and the process's tally."""
    Work.total += n
    if work is not None:
        work.spent += n


def work_done() -> int:
    """Candidate evaluations the phase-slip and wrong-codec searches have spent so far in
    this process."""
    return Work.total


STARVED = " (more suspect runs here than the search budget covers: not edited)"
# The reason of the finding a search stage leaves where its budget ran out.
EXHAUSTED = (
    "{what}: the search budget for this block ({budget:,} candidate evaluations, in proportion "
    "to its length) ran out here; suspect runs from here on were not searched, and none in "
    "the block was edited"
)
# The confidence of that finding: it says where the search stopped, not that text is damaged.
EXHAUSTED_CONFIDENCE = 0.5


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
        EXHAUSTED_CONFIDENCE,
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
