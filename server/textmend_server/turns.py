"""Taking turns at the engine: which admitted documents of a worker run the engine now.

The engine is CPU-bound Python, so the calls a worker admits would otherwise share its core
through the GIL, each slowed by all the others, and a light document would wait behind the
heavy CJK searches (issue 16). `Turns` gives the engine to at most two documents at a time, a
light one and a heavy one; the servicer takes a `Turn` for each document and hands the engine a
`cancelled` callback that calls `Turns.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
import threading
import time
from collections.abc import Callable

# How often a document waiting for its turn checks that its caller is still there (and that it
# is within --max-seconds), in seconds: a caller that left frees its place within this long.
_TURN_POLL = 0.25
# Classes of engine time above the first slice (`Turns`): 1 to 2 slices, then everything
# longer in order of arrival. More classes (up to 2**9 slices) were measured first: under issue
# 16's 64-caller load the longest CJK documents then yielded to every younger one and missed
# 60 s deadlines; in arrival order they finish in turn, while a document that needed a little
# more than a slice (a corrupted 5 KB page, 50-100 ms) still goes before them.
_TURN_CLASSES = 2


@dataclasses.dataclass(eq=False)
class Turn:
    """One document's place at the engine of a worker (see `Turns`)."""

    #: Arrival order: among documents that have had about as much engine time and have the
    #: same deadline, the oldest goes first.
    seq: int
    #: The caller's deadline (`time.perf_counter` clock; infinity without one): among heavy
    #: documents that have had about as much engine time, the one due first goes first.
    deadline: float = math.inf
    #: CPU seconds the document's thread spent in the engine in earlier turns.
    attained: float = 0.0
    #: `time.thread_time()` when its current turn began (the turn is taken, used and given
    #: back on the call's own thread).
    granted: float = 0.0
    #: `time.perf_counter()` then: the thread's CPU time since is at most the time since, so
    #: `checkpoint` reads the thread's CPU clock (a system call, where the wall clock is not)
    #: only once the wall clock says the slice may be used up.
    granted_at: float = 0.0
    #: The lane it holds or waits for: `Turns.LIGHT` until it has had a slice, then `HEAVY`.
    lane: int = 0
    holding: bool = False
    abandoned: bool = False
    #: Set when the turn is given to it while it waits; made only when it has to wait (most
    #: documents never do, and a `threading.Event` costs a lock and a condition).
    event: threading.Event | None = None


class Turns:
    """Which admitted documents run the engine in this worker, so that heavy documents do not
    starve light ones (issue 16: a 5 KB clean document waited seconds behind CJK searches).

    The engine is CPU-bound Python, so a worker's admitted calls would otherwise share its core
    through the GIL, each slowed by all the others. Here two lanes hold one document each:

    * the light lane takes documents as they arrive, in order, and keeps each until it has had
      `slice_seconds` of engine time; light documents (a few milliseconds) finish there;
    * a document that has had its slice moves to the heavy lane at the engine's next check
      (the engine asks whether to go on between blocks, stages and phase-slip searches: its
      `cancelled` callback calls `checkpoint`), freeing the light lane for the next arrival.
      Heavy documents are ranked by the engine time they have had, in classes (one to two
      slices, then more, see `_TURN_CLASSES`), and within a class by their caller's deadline,
      the earliest first (then the oldest); the running one yields at a check to a waiting one
      of a lower class, so one that needed a little more than a slice goes before the long CJK
      searches, and the searches finish in the order they are due instead of all slowing down
      together. Callers that set the same timeout are served in the order they sent, so a
      document retried after its worker died (the bundled client keeps the call's deadline)
      goes before the ones sent after it, instead of joining the back of the queue with part
      of its time gone.

    So at most two documents share the worker's core: a light one never waits for a heavy one
    to reach its next check, only for the light ones before it. Engine time is the thread's CPU
    time (`time.thread_time`), so neither waiting for the GIL nor a busy machine makes a light
    document look heavy. A waiting document checks every `_TURN_POLL` seconds whether its caller
    is still there (gone is the engine's own callback, which may raise `LimitError` past
    --max-seconds) and gives its place up when not. Nothing blocks while holding the lock.

    >>> turns = Turns(slice_seconds=0.05)
    >>> first, second = turns.new_turn(), turns.new_turn()
    >>> turns.acquire(first, lambda: False), turns.waiting()
    (True, 0)
    >>> turns.release(first); turns.acquire(second, lambda: False)
    True
    """

    LIGHT = 0
    HEAVY = 1

    def __init__(self, slice_seconds: float) -> None:
        self._slice = slice_seconds
        self._lock = threading.Lock()
        self._free = [True, True]  # per lane
        # Per lane, waiting turns as (class, deadline, arrival, turn): in the light lane the
        # class is always 0 and the deadline infinity (arrival order).
        self._queues: list[list[tuple[int, float, int, Turn]]] = [[], []]
        self._seq = 0

    def new_turn(self, deadline: float = math.inf) -> Turn:
        """A place for one more document, behind every document that came before it in the
        light lane; deadline (`time.perf_counter` clock) ranks it in the heavy lane."""
        with self._lock:
            self._seq += 1
            return Turn(self._seq, deadline)

    def waiting(self) -> int:
        """Documents waiting for their turn now."""
        with self._lock:
            return sum(not entry[-1].abandoned for queue in self._queues for entry in queue)

    def _class(self, attained: float) -> int:
        """0 below one slice, then 1, 2, ... as attained doubles (at most `_TURN_CLASSES`)."""
        level = 0
        bound = self._slice
        while attained >= bound and level < _TURN_CLASSES:
            level += 1
            bound *= 2
        return level

    def _rank(self, turn: Turn, lane: int, attained: float) -> tuple[int, float, int]:
        """Where turn stands in lane's queue: lower goes first."""
        if lane == self.LIGHT:
            return (0, math.inf, turn.seq)
        return (self._class(attained), turn.deadline, turn.seq)

    def _best(self, lane: int) -> tuple[int, float, int, Turn] | None:
        """The waiting document of lane to run next (dropping places given up), or None."""
        queue = self._queues[lane]
        while queue and queue[0][3].abandoned:
            heapq.heappop(queue)
        return queue[0] if queue else None

    def _pass_on(self, lane: int) -> None:
        """Give lane's free turn to its best waiting document, or keep it free."""
        best = self._best(lane)
        if best is None:
            self._free[lane] = True
            return
        heapq.heappop(self._queues[lane])
        best[3].holding = True
        assert best[3].event is not None  # made when it was queued
        best[3].event.set()

    def _take_or_queue(self, turn: Turn, lane: int, attained: float) -> bool:
        """Take lane's turn now (True) or join its queue (False); the lock is held."""
        turn.lane = lane
        if self._free[lane] and self._best(lane) is None:
            self._free[lane] = False
            turn.holding = True
            turn.granted = time.thread_time()
            turn.granted_at = time.perf_counter()
            return True
        if turn.event is None:
            turn.event = threading.Event()
        else:
            turn.event.clear()
        heapq.heappush(self._queues[lane], (*self._rank(turn, lane, attained), turn))
        return False

    def acquire(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        """Wait for turn in the light lane; False when the caller left first (the place is
        given up)."""
        with self._lock:
            if self._take_or_queue(turn, self.LIGHT, 0.0):
                return True
        return self._wait(turn, gone)

    def checkpoint(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        """Called where the engine may stop: move a document that has had its slice to the
        heavy lane, or let a heavy one yield to one that has had less, and wait for the turn
        when it must. False when the caller left while waiting."""
        if not turn.holding or turn.attained + time.perf_counter() - turn.granted_at < self._slice:
            return True
        attained = turn.attained + time.thread_time() - turn.granted
        if attained < self._slice:
            return True
        with self._lock:
            if turn.lane == self.HEAVY:
                best = self._best(self.HEAVY)
                if best is None or best[:3] >= self._rank(turn, self.HEAVY, attained):
                    return True
            turn.holding = False
            turn.attained = attained
            self._pass_on(turn.lane)
            if self._take_or_queue(turn, self.HEAVY, attained):
                return True
        return self._wait(turn, gone)

    def release(self, turn: Turn) -> None:
        """The document is done with the engine (or gave up): the next one's turn."""
        with self._lock:
            if turn.holding:
                turn.holding = False
                turn.attained += time.thread_time() - turn.granted
                self._pass_on(turn.lane)
            turn.abandoned = True

    def _wait(self, turn: Turn, gone: Callable[[], bool]) -> bool:
        event = turn.event
        assert event is not None  # made when it was queued
        try:
            while not event.wait(_TURN_POLL):
                if gone():
                    with self._lock:
                        if not turn.holding:
                            turn.abandoned = True
                            return False
                    break  # granted meanwhile: the engine's own check stops it
        except BaseException:
            self.release(turn)
            raise
        turn.granted = time.thread_time()
        turn.granted_at = time.perf_counter()
        return True


__all__ = ["Turn", "Turns"]
