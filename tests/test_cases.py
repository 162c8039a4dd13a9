"""Data-driven cases: `tests/cases/*.json` hold `label`, `original`, `expected`, `expect`.

`negative.json` is clean text in many scripts that must come back untouched; `repairs.json`
is damage the engine must repair. `expect: "fail"` marks a known failure, run as a strict
xfail so that fixing it is noticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textmend_server import repair_text
from textmend_server.edits import apply_edits

CASES = Path(__file__).parent / "cases"


def load(name: str) -> list[pytest.param]:
    params = []
    for case in json.loads((CASES / name).read_text(encoding="utf-8")):
        marks = [pytest.mark.xfail(strict=True)] if case["expect"] == "fail" else []
        params.append(pytest.param(case, id=case["label"], marks=marks))
    return params


@pytest.mark.parametrize("case", load("negative.json"))
def test_clean_text_is_untouched(case: dict[str, str]) -> None:
    result = repair_text(case["original"])
    assert result.text == case["expected"]
    assert result.edits == []


@pytest.mark.parametrize("case", load("repairs.json") + load("negative.json"))
def test_repairs_are_exact_replayable_and_idempotent(case: dict[str, str]) -> None:
    result = repair_text(case["original"])
    assert result.text == case["expected"]
    assert apply_edits(case["original"], result.edits) == result.text
    again = repair_text(result.text)
    assert again.text == result.text
    assert again.edits == []
