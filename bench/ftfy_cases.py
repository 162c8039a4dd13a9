"""textmend's mojibake repair against ftfy's own test cases.

Reads ftfy's case files (every `*.json` in `.cache/peer/ftfy_cases/`, which
`scripts/fetch_peer_data.py` writes: run it first; or in --cases DIR) and reports, for ftfy's
`fix_text` with its defaults, ftfy with textmend's conservative configuration, and the whole
textmend engine, how many cases come out equal to `fixed-encoding` (the fair target for a
repair that keeps valid typography) and to `fixed`.

    .venv/bin/python scripts/fetch_peer_data.py   # first: ftfy 6.3.1's cases from its sdist
    .venv/bin/python bench/ftfy_cases.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import ftfy

from textmend_server import repair_text
from textmend_server.fixes import FTFY_CONFIG

# Written by scripts/fetch_peer_data.py (ftfy 6.3.1's tests/test_cases.json from its PyPI sdist).
DEFAULT_CASES = Path(__file__).resolve().parents[1] / ".cache" / "peer" / "ftfy_cases"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)
    if not args.cases.is_dir():
        print(f"skipped: no ftfy cases at {args.cases} (run scripts/fetch_peer_data.py)")
        return 0
    cases = [c for f in sorted(args.cases.glob("*.json")) for c in json.loads(f.read_text())]
    conservative = FTFY_CONFIG._replace(explain=False)
    tools: dict[str, Callable[[str], str]] = {
        "ftfy.fix_text (defaults)": ftfy.fix_text,
        "ftfy.fix_text (textmend config)": lambda t: ftfy.fix_text(t, conservative),
        "textmend engine": lambda t: repair_text(t, include_diff=False).text,
    }
    print(f"{len(cases)} cases from {args.cases}")
    print(f"{'tool':34} {'= fixed-encoding':>17} {'= fixed':>9} {'seconds':>8}")
    for name, fix in tools.items():
        started = time.perf_counter()
        outputs = [fix(c["original"]) for c in cases]
        seconds = time.perf_counter() - started
        pairs = list(zip(outputs, cases, strict=True))
        enc = sum(o == c.get("fixed-encoding", c["fixed"]) for o, c in pairs)
        full = sum(o == c["fixed"] for o, c in pairs)
        print(f"{name:34} {enc:>10}/{len(cases):<6} {full:>4}/{len(cases):<4} {seconds:8.3f}")
        if args.show_misses and name == "textmend engine":
            for o, c in zip(outputs, cases, strict=True):
                if o != c.get("fixed-encoding", c["fixed"]):
                    print(f"  miss [{c['expect']}] {c['label']}: {c['original']!r} -> {o!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
