"""The unified diff built from edits is a correct patch from the original to the cleaned text."""

from __future__ import annotations

import difflib

from fuzz_target import fe
from hypothesis import given, settings
from hypothesis import strategies as st

from textmend_server.diffing import unified_diff
from textmend_server.edits import EditLog, Proposal
from textmend_server.policy import Category

patch = fe.apply_unified_diff


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab\n", max_size=40), st.data())
def test_diff_is_a_patch_from_original_to_cleaned(original: str, data: st.DataObject) -> None:
    log = EditLog(original)
    proposals = []
    pos = 0
    while pos <= len(original) and data.draw(st.booleans()):
        start = data.draw(st.integers(pos, len(original)))
        end = data.draw(st.integers(start, min(len(original), start + 5)))
        text = data.draw(st.text(alphabet="XY\n", max_size=3))
        proposals.append(Proposal(start, end, text, Category.MOJIBAKE, "r", 0.5))
        pos = end + 1 if end == start else end
    log.apply(proposals)
    diff = unified_diff(original, log.text, log.edits())
    assert patch(original, diff) == log.text
    assert (diff == "") == (original == log.text)


def test_edits_that_cancel_out_show_no_diff() -> None:
    # Found by the property test above: a line deleted and inserted again.
    log = EditLog("\n")
    log.apply([Proposal(0, 1, "", Category.MOJIBAKE, "r", 0.5)])
    log.apply([Proposal(0, 0, "\n", Category.MOJIBAKE, "r", 0.5)])
    assert log.text == "\n" and log.edits()
    assert unified_diff("\n", log.text, log.edits()) == ""


def test_matches_difflib_on_a_simple_change() -> None:
    original = "".join(f"line {n}\n" for n in range(12))
    cleaned = original.replace("line 5", "LINE 5")
    log = EditLog(original)
    at = original.index("line 5")
    log.apply([Proposal(at, at + 4, "LINE", Category.MOJIBAKE, "r", 0.9)])
    ours = unified_diff(original, cleaned, log.edits(), label="doc")
    theirs = "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True),
            cleaned.splitlines(keepends=True),
            "a/doc",
            "b/doc",
        )
    )
    assert ours == theirs
