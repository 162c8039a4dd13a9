"""CJK repairs: byte-phase slips, runs decoded with the wrong CJK codec, leaked pinyin.

Three detectors, each a stage the engine runs on the current text, in this order:

* `find_phase_slips` — GBK, Big5 or Shift-JIS text read one byte out of step
  (`公司?!彼Q他們` → `公司。”他稱他們`): `cjk.slip`;
* `find_wrong_codec_runs` — whole runs decoded with the wrong codec (`鏂囧瓧` → `文字`):
  `cjk.codecrun`;
* `find_ruby_leaks` — pinyin annotations left in the text (`創(chuàng)建者` → `創建者`):
  `cjk.ruby`.

Each returns non-overlapping `Proposal`s sorted by start, in code points of the text given.
Confidence comes from the evidence: how much better the repair scores than the text as it
stands under a character model of the language (`textmend_server.cjk.lm`), and for pinyin,
whether the syllables are a valid reading of the character before them. Clean text costs a
compiled-regex scan and yields nothing. The two searching stages take an optional
`SearchBudget` (`cjk.budget`): what they may spend, the defaults when it is not given.
"""

from __future__ import annotations

from textmend_server.cjk.budget import (
    DEFAULT_BUDGET,
    SearchBudget,
    call_budget,
    work_done,
)
from textmend_server.cjk.codecrun import find_wrong_codec_runs
from textmend_server.cjk.ruby import find_ruby_leaks
from textmend_server.cjk.scripts import text_language
from textmend_server.cjk.slip import LONE_SLIP_CONTEXT, find_phase_slips, max_growth

__all__ = [
    "DEFAULT_BUDGET",
    "LONE_SLIP_CONTEXT",
    "SearchBudget",
    "call_budget",
    "find_phase_slips",
    "find_ruby_leaks",
    "find_wrong_codec_runs",
    "max_growth",
    "text_language",
    "work_done",
]
