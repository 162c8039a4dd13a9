"""One size-budgeted memo cache per process, shared by every memo the engine keeps.

The engine remembers what it worked out (character-model probabilities, word-lattice
prefixes, candidate lists of the phase-slip search, first looks at a trigger, wrong-codec
fills) because documents repeat the same characters and later passes look at the same places
again. Each memo used to have its own cap, and some had none: under long mixed load a worker
grew from 350 MiB to 1.0–1.3 GB (issue 16). Now every memo is a `Memo` registered here, and
all of them together are held to one byte budget (`configure`, default `DEFAULT_MB`).

How: each `Memo` is a dict (a hit costs a plain dict lookup: the searches' inner loop reads
these millions of times a second) that declares the bytes one of its entries holds, measured
with `sys.getsizeof` on typical entries (see each memo's definition). `Memo.put` adds an
entry's bytes to the process total; when the total passes the budget, the memo holding the
most bytes drops its oldest entries (insertion order), an eighth of them at a time, until the
total is below the budget again. Entries are recomputed on the next miss: a cache changes the
cost of a repair, never its result (the searches charge a hit as if they had searched).

    >>> from textmend_server import cache
    >>> m = cache.Memo("doctest", entry_bytes=100)
    >>> m.put("k", 1)
    1
    >>> m.get("k"), cache.stats()["doctest"][0]
    (1, 1)
    >>> cache.clear(); m.get("k") is None
    True
"""

from __future__ import annotations

import threading
from typing import Any

# Default budget for all memos of one process that never calls `configure` (the engine used
# as a library, the benches), MiB: the memos of issue 16's mixed load held about 600 MiB
# uncapped (four of them 169k-273k entries); 256 MiB caps that while the working set of one
# heavy CJK document (the sample article: 14 MB of memo entries) fits many times over. The
# server configures its own budget per worker (`--cache-mb`, `config.DEFAULT_CACHE_MB`).
DEFAULT_MB = 256
# Of a memo over budget, this share of its oldest entries goes at once: eviction runs once per
# many insertions, not on each.
EVICT_SHARE = 8

_lock = threading.Lock()
_memos: dict[str, Memo] = {}
_budget = DEFAULT_MB << 20
_total = 0


class Memo(dict):
    """A memo: a dict whose entries count against the process's cache budget.

    Read it as a dict (`get`, `in`, `[]`); write it with `put`, which counts the entry and
    keeps the process within its budget. Writing with `[]=` bypasses the accounting: don't.
    """

    __slots__ = ("entry_bytes", "name")

    def __init__(self, name: str, entry_bytes: int) -> None:
        super().__init__()
        self.name = name
        self.entry_bytes = entry_bytes
        with _lock:
            old = _memos.get(name)
            if old is not None:
                _forget(old)
            _memos[name] = self

    def put(self, key: Any, value: Any) -> Any:
        """Remember value under key; returns value."""
        global _total
        if key not in self:
            _total += self.entry_bytes
        dict.__setitem__(self, key, value)
        if _total > _budget:
            _evict()
        return value

    def bytes(self) -> int:
        """The bytes this memo's entries are counted at."""
        return len(self) * self.entry_bytes

    def clear(self) -> None:
        """Forget every entry (and its bytes)."""
        global _total
        with _lock:
            _total -= self.bytes()
            dict.clear(self)

    def __reduce__(self):  # pragma: no cover - memos are not pickled with their owners
        return (dict, ())


def _forget(memo: Memo) -> None:
    global _total
    _total -= memo.bytes()
    dict.clear(memo)


def _evict() -> None:
    """Drop the oldest entries of the largest memos until the total is within budget."""
    global _total
    with _lock:
        while _total > _budget:
            memo = max(_memos.values(), key=Memo.bytes)
            if not memo:
                _total = sum(m.bytes() for m in _memos.values())
                return
            drop = max(1, len(memo) // EVICT_SHARE)
            for key in list(memo.keys())[:drop]:
                dict.pop(memo, key, None)
            _total -= drop * memo.entry_bytes


def configure(max_mb: float) -> None:
    """Hold every memo of this process, together, to max_mb MiB (the server's `--cache-mb`);
    evicts at once when the memos already hold more. 0 disables the memos' memory (every
    entry is evicted as soon as it is added)."""
    global _budget
    if max_mb < 0:
        raise ValueError(f"cache size must be at least 0 MiB, not {max_mb}")
    _budget = int(max_mb * (1 << 20))
    if _total > _budget:
        _evict()


def budget_bytes() -> int:
    """The byte budget every memo of this process shares."""
    return _budget


def clear() -> None:
    """Empty every memo (benchmarks measure a repair without the one before it)."""
    global _total
    with _lock:
        for memo in _memos.values():
            dict.clear(memo)
        _total = 0


def stats() -> dict[str, tuple[int, int]]:
    """(entries, bytes counted) per memo, by name."""
    return {name: (len(m), m.bytes()) for name, m in sorted(_memos.items())}


def total_bytes() -> int:
    """The bytes all memos' entries are counted at together."""
    return _total
