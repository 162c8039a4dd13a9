"""Byte-phase slips: GBK, Big5 or Shift-JIS text read one byte out of step, and put back.

`公司?!彼Q他們` is `公司。”他稱他們` read by a lossy decoder that lost a byte: from the `?` on, it
paired the trail byte of one character with the lead byte of the next. The stage is in four
modules, each with one job:

* `stage` — `find_phase_slips`, the engine's stage: which `?` to search, in which codecs, and
  whether a reading is applied or only reported;
* `search` — `repair_at`, the beam search that re-reads the run from one `?` in one codec;
* `candidates` — the characters a pair of bytes can stand for, ranked and memoised;
* `context` — how the text around a trigger reads (the checks before a search, and the
  context a reading is scored in).

What the searches may spend is `cjk.budget`'s, shared with the wrong-codec stage.
"""

from __future__ import annotations

from textmend_server.cjk.budget import (
    DEFAULT_BUDGET,
    STARVED,
    Work,
    call_budget,
    work_done,
)
from textmend_server.cjk.slip.context import left_evidence
from textmend_server.cjk.slip.search import BEAM, CHILDREN, SlipRepair, repair_at
from textmend_server.cjk.slip.stage import LONE_SLIP_CONTEXT, find_phase_slips, max_growth

# The default budget and the beam's size are here too: tests and benches have long read
# them as `slip.NAME`.
__all__ = [
    "BEAM",
    "CHILDREN",
    "DEFAULT_BUDGET",
    "LONE_SLIP_CONTEXT",
    "STARVED",
    "SlipRepair",
    "Work",
    "call_budget",
    "find_phase_slips",
    "left_evidence",
    "max_growth",
    "repair_at",
    "work_done",
]
