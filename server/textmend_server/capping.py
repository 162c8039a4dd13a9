"""At most a fixed number of findings of one category per document, counted as they are made.

A finding's text is bounded too (`MAX_FINDING_TEXT`). A document can hold a finding in every
character (a megabyte of U+202E is 333,333 bidi controls). The response lists at most
`EngineConfig.max_findings_per_category` of one category, the first by position, the last of
them saying how many more there were and how far they reach (issue 16: 160,001 findings made an
18 MB response). The engine used to keep every finding until the end of a repair and cap them
then, which held about 370 bytes per finding: 124 times the size of a document of bidi controls
(tracemalloc, `repair_bytes` of 1 MB). `StageFindings` keeps, for one stage in one pass, only
the first `cap` findings of each category and counts the rest, so a repair holds at most `cap`
findings per category per stage whatever the document; `capped` then gives the same list the
whole set would have given.
"""

from __future__ import annotations

import heapq
from dataclasses import replace

from textmend_server.edits import Proposal
from textmend_server.policy import Category

MORE_LIKE_IT = (
    "; and {more:,} more like it up to code point {end:,}, not listed (at most {cap:,} findings "
    "of one category per document)"
)

# Code points of a finding's text (`original`, and `replacement` when it only repeats it) kept in
# the finding (`engine._finding`, and `repeats`, which cuts its own there); past it the text is
# cut, and the finding's span still covers all of it (nothing in it was changed, so a caller reads
# it whole in the cleaned text at the cleaned span). Edits are never cut: applying them must give
# the cleaned text. Why: a `repeated_block` finding spans a whole repeated run and carried its
# text twice, so a 16 MB document that repeated itself got 327 findings totalling 30 MB, and a 64
# MB one a 191 MB response (issue 19). 1,000 code points, chosen, show several sentences of a
# block (a repeated run is 200 or more, `repeats.REPEAT_MIN_CHARS`).
MAX_FINDING_TEXT = 1000

# One finding in original coordinates: (start, end, proposal).
Found = tuple[int, int, Proposal]


class StageFindings:
    """One stage's findings in one pass: the first `cap` of each category by position (then
    by arrival), and of the rest only how many and the furthest end.

    >>> p = Proposal(0, 1, "", Category.BIDI_CONTROL, "bidi", 0.9, flag_only=True)
    >>> kept = StageFindings(cap=2)
    >>> for i in (4, 0, 3, 1, 2):
    ...     kept.add(i, i + 1, p)
    >>> [(s, e) for s, e, _ in kept.items()], kept.beyond
    ([(0, 1), (1, 2)], {<Category.BIDI_CONTROL: 'bidi_control'>: (3, 5)})
    """

    __slots__ = ("_arrivals", "_heaps", "beyond", "cap")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        # Per category, a heap of the kept findings keyed so that the root is the one that goes
        # first when a better one comes: the last by position, then the latest to arrive.
        self._heaps: dict[Category, list[tuple[int, int, int, Found]]] = {}
        #: Per category, (findings not kept, the furthest end among them).
        self.beyond: dict[Category, tuple[int, int]] = {}
        self._arrivals = 0

    def add(self, start: int, end: int, proposal: Proposal) -> None:
        """Count one finding, keeping it while it is among the first `cap` of its category."""
        self._arrivals += 1
        entry = (-start, -end, -self._arrivals, (start, end, proposal))
        heap = self._heaps.setdefault(proposal.category, [])
        if len(heap) < self.cap:
            heapq.heappush(heap, entry)
            return
        dropped = heapq.heappushpop(heap, entry)[3]
        count, furthest = self.beyond.get(proposal.category, (0, 0))
        self.beyond[proposal.category] = (count + 1, max(furthest, dropped[1]))

    def items(self) -> list[Found]:
        """The kept findings, in the order they came."""
        entries = [entry for heap in self._heaps.values() for entry in heap]
        entries.sort(key=lambda entry: -entry[2])
        return [entry[3] for entry in entries]


def capped(
    found: list[Found], cap: int, beyond: dict[Category, tuple[int, int]] | None = None
) -> list[Found]:
    """found (sorted by position) with at most cap findings of each category: the cap-th of
    a category says how many more there were, and how far they reach. beyond counts, per
    category, findings already left out ((count, furthest end), from `StageFindings`).

    >>> p = Proposal(0, 1, "", Category.BIDI_CONTROL, "bidi", 0.9, flag_only=True)
    >>> out = capped([(i, i + 1, p) for i in range(5)], cap=2)
    >>> [(s, e) for s, e, _ in out]
    [(0, 1), (1, 2)]
    >>> out[-1][2].reason.split(",")[0]
    'bidi; and 3 more like it up to code point 5'
    >>> capped([(0, 1, p), (1, 2, p)], cap=2, beyond={Category.BIDI_CONTROL: (3, 5)}) == out
    True
    """
    beyond = beyond or {}
    counts: dict[Category, int] = {category: n for category, (n, _) in beyond.items()}
    for _, _, p in found:
        counts[p.category] = counts.get(p.category, 0) + 1
    if all(n <= cap for n in counts.values()):
        return found
    last_end: dict[Category, int] = {category: end for category, (_, end) in beyond.items()}
    for _, end, p in found:
        last_end[p.category] = max(end, last_end.get(p.category, 0))
    out: list[Found] = []
    seen: dict[Category, int] = {}
    for start, end, p in found:
        k = seen[p.category] = seen.get(p.category, 0) + 1
        if k > cap:
            continue
        if k == cap and counts[p.category] > cap:
            more = MORE_LIKE_IT.format(
                more=counts[p.category] - cap, end=last_end[p.category], cap=cap
            )
            p = replace(p, reason=p.reason + more)
        out.append((start, end, p))
    return out


def merged_beyond(stages: list[StageFindings]) -> dict[Category, tuple[int, int]]:
    """The stages' findings not kept, per category: (how many in all, the furthest end)."""
    out: dict[Category, tuple[int, int]] = {}
    for stage in stages:
        for category, (count, end) in stage.beyond.items():
            total, furthest = out.get(category, (0, 0))
            out[category] = (total + count, max(furthest, end))
    return out
