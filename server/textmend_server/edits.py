"""Edits as data: what each repair proposes, and how edits from successive stages compose.

Repairs run in stages, each on the text the previous stage left. A stage returns `Proposal`s
in the coordinates of the text it saw; `EditLog` folds them into edits against the decoded
original, merging a proposal with any earlier edit it overlaps, so that at the end

    apply_edits(original, log.edits()) == log.text

holds by construction, and every offset a caller sees refers to the original or the cleaned
text, never to an intermediate one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from textmend_server.policy import Category


@dataclass(frozen=True, slots=True)
class Proposal:
    """A change one stage wants: replace text[start:end] with replacement.

    Offsets are code points into the text the stage was given. A proposal whose replacement
    equals the span is a finding only (nothing to change, something to report).
    """

    start: int
    end: int
    replacement: str
    category: Category
    reason: str
    confidence: float
    # The byte span in the request's content, for undecodable bytes; None otherwise.
    byte_span: tuple[int, int] | None = None
    # True when the evidence is too weak to edit: report it, with `replacement` as the
    # suggestion, whatever the policy says.
    flag_only: bool = False


@dataclass(frozen=True, slots=True)
class Edit:
    """A change against the decoded original, and where its result stands in the cleaned text.

    For findings, `replacement` is the proposed repair (`suggestion` in the proto) and the
    text itself is unchanged.
    """

    category: Category
    original_start: int
    original_end: int
    cleaned_start: int
    cleaned_end: int
    original: str
    replacement: str
    reason: str
    confidence: float
    byte_span: tuple[int, int] | None = None


@dataclass(slots=True)
class _Pending:
    """An edit under construction: original span, replacement, and what caused it."""

    start: int
    end: int
    replacement: str
    causes: list[Proposal] = field(default_factory=list)


def apply_edits(original: str, edits: Iterable[Edit]) -> str:
    """Apply edits (sorted, non-overlapping, in original coordinates) to original.

    >>> e = Edit(Category.MOJIBAKE, 3, 5, 3, 4, "Ã©", "é", "utf-8 read as latin-1", 0.9)
    >>> apply_edits("cafÃ©!", [e])
    'café!'
    """
    out: list[str] = []
    pos = 0
    for edit in edits:
        if edit.original_start < pos:
            raise ValueError("edits overlap or are not sorted by original_start")
        out.append(original[pos : edit.original_start])
        out.append(edit.replacement)
        pos = edit.original_end
    out.append(original[pos:])
    return "".join(out)


class EditLog:
    """The original text, the edits made so far, and the current text they produce.

    >>> log = EditLog("a<b>c")
    >>> log.apply([Proposal(1, 4, "", Category.MARKUP_LEAK, "tag", 0.9)])
    >>> log.text
    'ac'
    >>> [(e.original_start, e.original_end, e.cleaned_start, e.cleaned_end) for e in log.edits()]
    [(1, 4, 1, 1)]
    """

    def __init__(self, original: str) -> None:
        self.original = original
        self.text = original
        self._edits: list[_Pending] = []
        # Offsets derived from _edits, built on first use after each apply(): mapping many
        # spans costs one walk over the edits, not one per span.
        self._layout: tuple[list[int], list[int], list[int]] | None = None
        self._mirror: tuple[list[int], list[int], list[int], list[_Pending]] | None = None

    def apply(self, proposals: Sequence[Proposal]) -> None:
        """Fold one stage's changes, given in current-text coordinates, into the log.

        Proposals of one stage must not overlap; those that change nothing are ignored. A
        change that overlaps an earlier edit is merged with it into one edit whose reason
        names both causes.
        """
        changes = sorted(
            (p for p in proposals if self.text[p.start : p.end] != p.replacement),
            key=lambda p: (p.start, p.end),
        )
        if not changes:
            return
        current, old = self.text, self._edits
        c_starts, c_ends, shifts = self._current_layout()
        # Group each change with the earlier edits it overlaps; changes that fall inside the
        # same earlier edit join one group. Earlier edits touched by no change pass through.
        out: list[_Pending | _Group] = []
        j, n, previous_end = 0, len(old), 0
        for ch in changes:
            if ch.start < previous_end:
                raise ValueError("proposals of one stage overlap")
            previous_end = ch.end
            group = out[-1] if out and isinstance(out[-1], _Group) else None
            if group is None or not group.old or ch.start >= c_ends[group.old[-1]]:
                while j < n and _before(c_starts[j], c_ends[j], ch):
                    out.append(old[j])
                    j += 1
                group = _Group(first_old=j)
                out.append(group)
            group.changes.append(ch)
            while j < n and c_starts[j] < ch.end:
                group.old.append(j)
                j += 1
        out.extend(old[j:])
        merged = [
            item
            if isinstance(item, _Pending)
            else item.pending(current, old, c_starts, c_ends, shifts)
            for item in out
        ]
        self._edits = [e for e in merged if self.original[e.start : e.end] != e.replacement]
        self.text = _render(self.original, self._edits)
        self._layout = self._mirror = None

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the current text to the original, widening to whole edits it touches."""
        c_starts, c_ends, shifts = self._current_layout()
        lo = _map_point(start, c_starts, c_ends, shifts, self._edits, left=True)
        hi = _map_point(end, c_starts, c_ends, shifts, self._edits, left=False)
        return lo, max(lo, hi)

    def original_to_cleaned(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of the original to the current text, widening to edits it touches."""
        if self._mirror is None:
            # Same walk as _map_point, with the roles of the two texts swapped.
            c_starts, c_ends, shifts = self._current_layout()
            self._mirror = (
                [e.start for e in self._edits],
                [e.end for e in self._edits],
                [-s for s in shifts],
                [_Pending(c_starts[k], c_ends[k], "", []) for k in range(len(self._edits))],
            )
        o_starts, o_ends, neg, mirrored = self._mirror
        lo = _map_point(start, o_starts, o_ends, neg, mirrored, left=True)
        hi = _map_point(end, o_starts, o_ends, neg, mirrored, left=False)
        return lo, max(lo, hi)

    def edits(self) -> list[Edit]:
        """The edits so far, in original order, with their cleaned-text spans."""
        c_starts, c_ends, _ = self._current_layout()
        return [
            Edit(
                category=pending.causes[-1].category,
                original_start=pending.start,
                original_end=pending.end,
                cleaned_start=c_starts[k],
                cleaned_end=c_ends[k],
                original=self.original[pending.start : pending.end],
                replacement=pending.replacement,
                reason="; then ".join(dict.fromkeys(c.reason for c in pending.causes)),
                confidence=min(c.confidence for c in pending.causes),
            )
            for k, pending in enumerate(self._edits)
        ]

    def _current_layout(self) -> tuple[list[int], list[int], list[int]]:
        """Current-text start and end of each edit, and the length change before each.

        shifts[k] is how much longer the current text is than the original before edit k;
        shifts[len(edits)] covers them all.
        """
        if self._layout is not None:
            return self._layout
        c_starts: list[int] = []
        c_ends: list[int] = []
        shifts = [0]
        for e in self._edits:
            c_starts.append(e.start + shifts[-1])
            c_ends.append(c_starts[-1] + len(e.replacement))
            shifts.append(shifts[-1] + len(e.replacement) - (e.end - e.start))
        self._layout = (c_starts, c_ends, shifts)
        return self._layout


@dataclass(slots=True)
class _Group:
    """Changes of one stage and the earlier edits (by index) they overlap."""

    first_old: int
    changes: list[Proposal] = field(default_factory=list)
    old: list[int] = field(default_factory=list)

    def pending(
        self,
        current: str,
        old: Sequence[_Pending],
        c_starts: Sequence[int],
        c_ends: Sequence[int],
        shifts: Sequence[int],
    ) -> _Pending:
        """The single edit, against the original, that this group amounts to."""
        first, last = self.changes[0], self.changes[-1]
        c_lo, c_hi = first.start, last.end
        o_lo, o_hi = first.start - shifts[self.first_old], last.end - shifts[self.first_old]
        if self.old:
            k0, k1 = self.old[0], self.old[-1]
            if c_starts[k0] <= c_lo:
                c_lo, o_lo = c_starts[k0], old[k0].start
            if c_ends[k1] >= c_hi:
                c_hi, o_hi = c_ends[k1], old[k1].end
            else:
                o_hi = c_hi - shifts[k1 + 1]
        pieces: list[str] = []
        pos = c_lo
        for ch in self.changes:
            pieces += [current[pos : ch.start], ch.replacement]
            pos = ch.end
        pieces.append(current[pos:c_hi])
        causes = [cause for k in self.old for cause in old[k].causes] + self.changes
        return _Pending(o_lo, o_hi, "".join(pieces), causes)


def _before(c_start: int, c_end: int, change: Proposal) -> bool:
    """Whether an earlier edit at [c_start, c_end) lies wholly before change, untouched by it."""
    if c_start == c_end:  # a deletion: a point, before the change unless strictly inside it
        return c_start <= change.start
    return c_end <= change.start


def _map_point(
    pos: int,
    starts: Sequence[int],
    ends: Sequence[int],
    shifts: Sequence[int],
    targets: Sequence[_Pending],
    *,
    left: bool,
) -> int:
    """Map pos from one text to the other through edits at [starts[k], ends[k]).

    A position strictly inside an edit widens to the edit's whole span in the other text.
    """
    k = bisect_right(starts, pos) - 1
    if k < 0:
        return pos - shifts[0]
    if starts[k] < pos < ends[k]:
        return targets[k].start if left else targets[k].end
    if pos == starts[k] < ends[k]:
        return targets[k].start
    if pos == starts[k] == ends[k] and not left:
        # A span ending at a point where text was deleted ends before the deletion.
        while k > 0 and starts[k - 1] == ends[k - 1] == pos:
            k -= 1
        return pos - shifts[k]
    return pos - shifts[k + 1]


def _render(original: str, edits: Sequence[_Pending]) -> str:
    out: list[str] = []
    pos = 0
    for e in edits:
        out.append(original[pos : e.start])
        out.append(e.replacement)
        pos = e.end
    out.append(original[pos:])
    return "".join(out)


def apply_proposals(text: str, proposals: list[Proposal]) -> str:
    """Apply non-overlapping proposals (any order) to text, flagged ones included: callers
    choose which to pass."""
    out: list[str] = []
    pos = 0
    for p in sorted(proposals, key=lambda p: p.start):
        out += [text[pos : p.start], p.replacement]
        pos = p.end
    out.append(text[pos:])
    return "".join(out)
