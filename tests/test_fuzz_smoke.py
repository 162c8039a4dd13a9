"""A short, deterministic run of the fuzz target, so that the default test run covers it.

500 inputs from a seeded generator go through `TestOneInput` (which raises on a broken
invariant or an undocumented exception), and each seed of the fuzzer's corpus goes through
`run_request` under every content type. atheris is not needed: without it the target reads
its input with a plain provider. Long, coverage-guided runs are `scripts/fuzz.sh`'s job.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fuzz_target import fe

from textmend_server import RepairPolicy
from textmend_server.engine import repair_text
from textmend_server.policy import Action, Category

SMOKE_INPUTS = 500


def test_random_inputs_through_the_fuzz_target() -> None:
    """500 seeded random inputs of at most 10 bytes keep every invariant (longer ones are
    slow: the CJK phase-slip search grows faster than linearly with runs of "?")."""
    for data in fe.random_inputs(SMOKE_INPUTS, seed=20240611, max_len=10):
        try:
            fe.TestOneInput(data)
        except Exception as error:
            raise AssertionError(f"fuzz input {data.hex()} failed: {error}") from error


@pytest.mark.parametrize("content_type", fe.CONTENT_TYPES)
def test_corpus_seeds_keep_every_invariant(content_type: str) -> None:
    """Each seed (mojibake, entities, pinyin, slips, CJK codecs) is repaired within contract."""
    results = []

    def check(content: bytes, declared: str | None) -> None:
        results.append(fe.run_request(content, declared, content_type, RepairPolicy()))

    fe.run_seeds(check)
    assert all(result is not None for result in results)
    assert any(result.edits for result in results), "no seed reached a repair"


def test_the_target_reports_a_broken_invariant() -> None:
    """check_result is not vacuous: a result whose text disagrees with its edits fails."""
    result = fe.run_request("cafÃ© ok".encode(), None, "text/plain", RepairPolicy())
    assert result is not None and result.edits
    broken = type(result)(
        result.original,
        result.text + "!",
        result.verdict,
        result.edits,
        result.findings,
        result.decoded,
        result.diff,
    )
    with pytest.raises(fe.InvariantViolation):
        fe.check_result(broken, RepairPolicy())


def test_the_target_checks_the_diff() -> None:
    """The diff must patch the original into the text, lines being split at "\\n" alone: a
    carriage return or a line separator inside a line is text, as the diff treats it."""
    content = "a\rb\u2028c cafÃ©\nnext line\n".encode()
    result = fe.run_request(content, None, "text/plain", RepairPolicy())
    assert result is not None and result.edits and result.diff
    assert fe.apply_unified_diff(result.original, result.diff) == result.text
    fields = [
        result.original,
        result.text,
        result.verdict,
        result.edits,
        result.findings,
        result.decoded,
    ]
    tampered = result.diff.replace("+a\rb\u2028c café", "+a\rb\u2028c cafe")
    assert tampered != result.diff
    for diff in (tampered, ""):
        with pytest.raises(fe.InvariantViolation):
            fe.check_result(type(result)(*fields, diff), RepairPolicy())


def test_a_long_repetitive_line_keeps_exact_edits() -> None:
    """Found by the fuzzer: a line of one short pattern of letters and C1 controls, repeated
    (1,446 bytes, declared Big5, decoded as cp273), took 3 s to align exactly for the mojibake
    repair's edits; large comparisons now let difflib skip the elements that are everywhere.
    The edits must still rebuild the text, and the target's other checks hold."""
    content = (Path(__file__).parent / "fixtures" / "repetitive-line.bin").read_bytes()
    policy = RepairPolicy(overrides=dict.fromkeys(Category, Action.FIX))
    # Read as cp273, as the input was decoded then: the alignment is the repair's business.
    result = repair_text(content.decode("cp273"), policy=policy)
    fe.check_result(result, policy)
    assert len(result.original) > 1000
    assert any(e.category is Category.MOJIBAKE for e in result.edits)
