"""The documents the equivalence tests send through both paths of a comparison: every case
file's original and expected text (`tests/cases/*.json`) and every vendored real file
(`tests/fixtures/real/`), each as (content, content type) with a readable test id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REAL = TESTS / "fixtures" / "real"


def case_and_real_documents() -> list[pytest.param]:
    """pytest params (content bytes, content type) of the case files and the real files."""
    docs = []
    for path in sorted((TESTS / "cases").glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            for key in ("original", "expected"):
                docs.append(
                    pytest.param(
                        case[key].encode("utf-8"), "", id=f"{path.stem}:{case['label']}:{key}"
                    )
                )
    for entry in json.loads((REAL / "manifest.json").read_text(encoding="utf-8")):
        content = (REAL / "files" / entry["path"]).read_bytes()
        docs.append(pytest.param(content, entry.get("content_type", ""), id=entry["path"]))
    return docs
