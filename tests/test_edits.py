"""EditLog: edits from successive stages compose into edits against the original."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from textmend_server.edits import EditLog, Proposal, apply_edits
from textmend_server.policy import Category


@st.composite
def stage(draw: st.DrawFn, text: str) -> list[Proposal]:
    """Non-overlapping random proposals for text."""
    proposals = []
    pos = 0
    while pos <= len(text) and draw(st.booleans()):
        start = draw(st.integers(pos, len(text)))
        end = draw(st.integers(start, min(len(text), start + 4)))
        replacement = draw(st.text(alphabet="XYZ\n", max_size=3))
        proposals.append(Proposal(start, end, replacement, Category.MOJIBAKE, "r", 0.5))
        pos = end + 1 if end == start else end
    return proposals


def apply_directly(text: str, proposals: list[Proposal]) -> str:
    for p in sorted(proposals, key=lambda p: (p.start, p.end), reverse=True):
        text = text[: p.start] + p.replacement + text[p.end :]
    return text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="abc\n", max_size=25), st.data())
def test_composed_edits_reproduce_the_text(original: str, data: st.DataObject) -> None:
    log = EditLog(original)
    for _ in range(data.draw(st.integers(1, 4))):
        proposals = data.draw(stage(log.text))
        expected = apply_directly(log.text, proposals)
        log.apply(proposals)
        assert log.text == expected
        edits = log.edits()
        assert apply_edits(original, edits) == log.text
        for previous, edit in itertools.pairwise(edits):
            assert previous.original_end <= edit.original_start
        for edit in edits:
            assert original[edit.original_start : edit.original_end] == edit.original
            assert log.text[edit.cleaned_start : edit.cleaned_end] == edit.replacement
            assert edit.original != edit.replacement


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="abc", max_size=20), st.data())
def test_span_mapping_stays_in_bounds_and_ordered(original: str, data: st.DataObject) -> None:
    log = EditLog(original)
    log.apply(data.draw(stage(original)))
    for start in range(len(log.text) + 1):
        end = data.draw(st.integers(start, len(log.text)))
        lo, hi = log.to_original(start, end)
        assert 0 <= lo <= hi <= len(original)
    for start in range(len(original) + 1):
        end = data.draw(st.integers(start, len(original)))
        lo, hi = log.original_to_cleaned(start, end)
        assert 0 <= lo <= hi <= len(log.text)


def test_untouched_text_maps_one_to_one() -> None:
    log = EditLog("abc<p>def")
    log.apply([Proposal(3, 6, "", Category.MARKUP_LEAK, "tag", 0.9)])
    assert log.text == "abcdef"
    assert log.to_original(4, 6) == (7, 9)
    assert log.original_to_cleaned(7, 9) == (4, 6)
    # A span inside an edit widens to the whole edit.
    assert log.original_to_cleaned(4, 5) == (3, 3)


def test_overlapping_stages_merge_into_one_edit_naming_both_causes() -> None:
    log = EditLog("xÃ©y")
    log.apply([Proposal(1, 3, "é", Category.MOJIBAKE, "utf-8 read as latin-1", 0.9)])
    log.apply([Proposal(0, 2, "E", Category.CONTROL_CHAR, "second", 0.5)])
    [edit] = log.edits()
    assert (edit.original_start, edit.original_end, edit.replacement) == (0, 3, "E")
    assert edit.reason == "utf-8 read as latin-1; then second"
    assert edit.confidence == 0.5


def test_a_stage_that_undoes_an_edit_leaves_no_edit() -> None:
    log = EditLog("abc")
    log.apply([Proposal(1, 2, "X", Category.MOJIBAKE, "r", 0.9)])
    log.apply([Proposal(1, 2, "b", Category.MOJIBAKE, "r", 0.9)])
    assert log.text == "abc"
    assert log.edits() == []
