"""fuzz/fuzz_engine.py, imported once for the tests that share its invariants (`check_result`,
`apply_unified_diff`) and its request builder. fuzz/ is a directory of scripts, not a package,
so it is imported by path."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def _load() -> ModuleType:
    if "fuzz_engine" in sys.modules:
        return sys.modules["fuzz_engine"]
    path = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_engine.py"
    spec = importlib.util.spec_from_file_location("fuzz_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_engine"] = module
    spec.loader.exec_module(module)
    return module


fe = _load()
