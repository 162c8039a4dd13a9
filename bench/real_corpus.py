"""textmend and ftfy on the real clean corpus that scripts/fetch_real_corpus.py builds.

Why: clean text must come back unchanged (issue 15: "0 documents changed, at most 1% with a
`repeated_block` finding"), and on real files, not on text written to suit the engine. Every
document of the manifest goes through the engine in process (`repair_bytes`, the manifest's
content_type, the default policy) and, in the same run, through ftfy in two configurations:

- `ftfy (engine config)`: ftfy with textmend's own FTFY_CONFIG (encodings only, no HTML
  unescaping), what the engine's mojibake stage runs;
- `ftfy (defaults, no quotes/width/ligatures)`: ftfy's defaults (so `unescape_html="auto"`,
  line breaks, control characters, NFC) with uncurl_quotes, fix_character_width and
  fix_latin_ligatures switched off.

`--planted` instead plants classic mojibake in one paragraph of each real file (the
paragraph's UTF-8 bytes read as cp1252 or latin-1, as real pipelines do) and reports how
often textmend and ftfy restore the original exactly, and whether any textmend edit falls
outside the planted paragraph.

    .venv/bin/python scripts/fetch_real_corpus.py          # once: builds .cache/real-corpus/
    .venv/bin/python bench/real_corpus.py --jobs 2
    .venv/bin/python bench/real_corpus.py --only man/ja --sample 50
    .venv/bin/python bench/real_corpus.py --planted --json planted.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ftfy

from textmend_server.engine import repair_bytes
from textmend_server.fixes import FTFY_CONFIG

REPO = Path(__file__).resolve().parent.parent

# Where scripts/fetch_real_corpus.py puts the corpus by default.
DEFAULT_CACHE = REPO / ".cache" / "real-corpus"

# The two ftfy configurations compared (see the module docstring): the engine's own, without
# the explanation it asks for; and ftfy's defaults less the three typography changes that
# issue 15 names (curly quotes, full-width forms and ligatures are content).
FTFY_ENGINE = FTFY_CONFIG._replace(explain=False)
FTFY_DEFAULTS = ftfy.TextFixerConfig(
    uncurl_quotes=False, fix_character_width=False, fix_latin_ligatures=False, explain=False
)
FTFY_CONFIGS = {
    "ftfy (engine config)": FTFY_ENGINE,
    "ftfy (defaults less typography)": FTFY_DEFAULTS,
}

# How many edits of a changed document the report shows: enough to see what kind of change
# it is, few enough that hundreds of documents still fit on a screen or two.
SHOW_EDITS = 3

# A planted paragraph: blank-line separated, between these many characters (a heading or a
# whole chapter is not a paragraph), with non-ASCII text for the mojibake to show in.
PARAGRAPH_MIN = 20
PARAGRAPH_MAX = 4000

# The two codecs a UTF-8 paragraph is misread as: Windows-1252 (most web mojibake, `â€™`)
# and ISO-8859-1 (`Ã©` plus C1 controls); documents alternate between them.
PLANT_CODECS = ("cp1252", "latin-1")


def load(cache: Path) -> list[dict[str, Any]]:
    """The manifest's entries, or an exit with what to run first."""
    manifest = cache / "manifest.json"
    if not manifest.exists():
        sys.exit(f"no corpus at {cache}: run .venv/bin/python scripts/fetch_real_corpus.py first")
    entries: list[dict[str, Any]] = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    for entry in entries:
        entry["file"] = str(cache / "files" / entry["path"])
    return entries


def choose(
    entries: list[dict[str, Any]], only: str | None, sample: int | None
) -> list[dict[str, Any]]:
    """Entries matching `--only FORMAT/LANG` (either may be empty), then `sample` spread evenly."""
    if only:
        fmt, _, lang = only.partition("/")
        entries = [
            e
            for e in entries
            if (not fmt or e["format"] == fmt)
            and (not lang or e["language"] == lang or e["language"].split("-")[0] == lang)
        ]
    if sample is not None and sample < len(entries):
        step = len(entries) / sample
        entries = [entries[int(i * step)] for i in range(sample)]
    return entries


def _edit(edit: Any) -> dict[str, Any]:
    return {
        "category": str(edit.category),
        "start": edit.original_start,
        "original": edit.original,
        "replacement": edit.replacement,
        "reason": edit.reason,
        "confidence": edit.confidence,
    }


def _first_difference(a: str, b: str) -> str:
    """A short `before → after` around the first place where two texts differ."""
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    return f"@{i}: {a[max(0, i - 15) : i + 25]!r} → {b[max(0, i - 15) : i + 25]!r}"


def clean_one(entry: dict[str, Any]) -> dict[str, Any]:
    """One document through textmend and both ftfy configurations: what changed."""
    raw = Path(entry["file"]).read_bytes()
    # A leading BOM is a signature, not content: decoding removes it (and reports it).
    text = raw.decode("utf-8").removeprefix("\ufeff")
    started = time.perf_counter()
    result = repair_bytes(raw, content_type=entry["content_type"], include_diff=False)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "path": entry["path"],
        "format": entry["format"],
        "language": entry["language"],
        "content_type": entry["content_type"],
        "bytes": len(raw),
        "seconds": seconds,
        "verdict": str(result.verdict),
        "changed": result.text != text,
        "edits": [_edit(e) for e in result.edits],
        "findings": Counter(str(f.category) for f in result.findings),
        "repeated_block": [
            _edit(f) for f in result.findings if str(f.category) == "repeated_block"
        ][:SHOW_EDITS],
        "ftfy": {},
    }
    if result.text != text and not result.edits:
        out["difference"] = _first_difference(text, result.text)
    for name, config in FTFY_CONFIGS.items():
        fixed = ftfy.fix_text(text, config)
        out["ftfy"][name] = _first_difference(text, fixed) if fixed != text else None
    return out


def plant(text: str, key: str, index: int) -> tuple[str, int, int, str] | None:
    """Text with one paragraph turned into mojibake: (planted text, start, end, codec).

    The paragraph is chosen (deterministically from the path) among those with non-ASCII
    characters; its UTF-8 bytes are decoded as cp1252 (undefined bytes as latin-1, as
    "sloppy" decoders do) or latin-1. None when no paragraph qualifies.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    for block in text.split("\n\n"):
        if PARAGRAPH_MIN <= len(block) <= PARAGRAPH_MAX and not block.isascii():
            spans.append((position, position + len(block)))
        position += len(block) + 2
    if not spans:
        return None
    start, end = random.Random(key).choice(spans)
    codec = PLANT_CODECS[index % len(PLANT_CODECS)]
    data = text[start:end].encode("utf-8")
    if codec == "cp1252":
        damaged = "".join(
            bytes([b]).decode("cp1252", errors="strict")
            if b not in b"\x81\x8d\x8f\x90\x9d"
            else chr(b)
            for b in data
        )
    else:
        damaged = data.decode("latin-1")
    if damaged == text[start:end]:
        return None
    return text[:start] + damaged + text[end:], start, start + len(damaged), codec


def planted_one(item: tuple[int, dict[str, Any]]) -> dict[str, Any] | None:
    """Plant mojibake in one document; did textmend and ftfy restore it exactly?"""
    index, entry = item
    text = Path(entry["file"]).read_bytes().decode("utf-8").removeprefix("\ufeff")
    planted = plant(text, entry["path"], index)
    if planted is None:
        return None
    damaged, start, end, codec = planted
    result = repair_bytes(
        damaged.encode("utf-8"), content_type=entry["content_type"], include_diff=False
    )
    outside = [_edit(e) for e in result.edits if e.original_end <= start or e.original_start >= end]
    out: dict[str, Any] = {
        "path": entry["path"],
        "format": entry["format"],
        "language": entry["language"],
        "codec": codec,
        "textmend": result.text == text,
        "outside": outside[:SHOW_EDITS],
        "outside_count": len(outside),
        "ftfy": {
            name: ftfy.fix_text(damaged, config) == text for name, config in FTFY_CONFIGS.items()
        },
    }
    if not out["textmend"]:
        out["difference"] = _first_difference(text, result.text)
    return out


def run(function: Any, items: Iterable[Any], jobs: int, total: int) -> list[Any]:
    """Map function over items in `jobs` processes, printing progress every ~10%."""
    results: list[Any] = []
    every = max(1, total // 10)
    if jobs <= 1:
        iterator: Iterable[Any] = map(function, items)
        pool = None
    else:
        pool = multiprocessing.get_context("spawn").Pool(jobs)
        iterator = pool.imap(function, items, chunksize=4)
    try:
        for n, result in enumerate(iterator, 1):
            results.append(result)
            if n % every == 0 or n == total:
                print(f"  {n}/{total}", file=sys.stderr, flush=True)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


def describe(entries: list[dict[str, Any]]) -> None:
    """Documents, MB, languages and formats of the entries run."""
    langs = Counter(e["language"].split("-")[0] for e in entries)
    formats = Counter(e["format"] for e in entries)
    size = sum(e["size"] for e in entries)
    print(f"documents: {len(entries)}  ({size / 1e6:.1f} MB, {len(langs)} languages)")
    print("formats: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())))
    print("languages: " + ", ".join(f"{k} {v}" for k, v in langs.most_common()))


def report_clean(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the clean-corpus report; return its numbers."""
    changed = [r for r in results if r["changed"]]
    repeated = [r for r in results if r["findings"].get("repeated_block")]
    found = [r for r in results if r["findings"]]
    verdicts = Counter(r["verdict"] for r in results)
    categories: Counter[str] = Counter()
    for r in results:
        categories.update(r["findings"])
    edit_categories = Counter(e["category"] for r in changed for e in r["edits"])
    n = len(results) or 1
    print(f"\ntextmend changed: {len(changed)} documents ({100 * len(changed) / n:.1f}%)")
    print("  edits by category: " + ", ".join(f"{k} {v}" for k, v in edit_categories.most_common()))
    for r in changed:
        kinds = Counter(e["category"] for e in r["edits"])
        print(
            f"  {r['path']} [{r['content_type']}] "
            + ", ".join(f"{k} {v}" for k, v in kinds.items())
        )
        for e in r["edits"][:SHOW_EDITS]:
            print(
                f"      {e['original']!r} → {e['replacement']!r}  ({e['category']}: {e['reason']})"
            )
        if "difference" in r:
            print(f"      (no edit explains it) {r['difference']}")
    print(f"\nrepeated_block findings: {len(repeated)} documents ({100 * len(repeated) / n:.1f}%)")
    for r in repeated:
        first = r["repeated_block"][0]["original"] if r["repeated_block"] else ""
        print(f"  {r['path']}: {r['findings']['repeated_block']}, first {first[:60]!r}")
    print(
        f"\nany finding: {len(found)} documents; by category: "
        + ", ".join(f"{k} {v}" for k, v in categories.most_common())
    )
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in verdicts.most_common()))
    ftfy_changed = {}
    for name in FTFY_CONFIGS:
        hits = [r for r in results if r["ftfy"][name]]
        ftfy_changed[name] = len(hits)
        print(f"{name} changed: {len(hits)} documents ({100 * len(hits) / n:.1f}%)")
        for r in hits[:10]:
            print(f"  {r['path']}: {r['ftfy'][name]}")
        if len(hits) > 10:
            print(f"  ... and {len(hits) - 10} more")
    seconds = sum(r["seconds"] for r in results)
    megabytes = sum(r["bytes"] for r in results) / 1e6
    print(f"\ntextmend engine time: {seconds:.1f} s for {megabytes:.1f} MB")
    return {
        "documents": len(results),
        "changed": len(changed),
        "repeated_block": len(repeated),
        "any_finding": len(found),
        "verdicts": dict(verdicts),
        "ftfy_changed": ftfy_changed,
    }


def report_planted(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Print the planted-mojibake report; return its numbers."""
    n = len(results) or 1
    restored = sum(r["textmend"] for r in results)
    outside = [r for r in results if r["outside_count"]]
    print(
        f"\nplanted mojibake in {len(results)} documents ({Counter(r['codec'] for r in results)})"
    )
    print(f"textmend restored exactly: {restored} ({100 * restored / n:.1f}%)")
    numbers: dict[str, Any] = {
        "documents": len(results),
        "textmend": restored,
        "outside": len(outside),
    }
    for name in FTFY_CONFIGS:
        hits = sum(r["ftfy"][name] for r in results)
        numbers[name] = hits
        print(f"{name} restored exactly: {hits} ({100 * hits / n:.1f}%)")
    both = sum(r["textmend"] and r["ftfy"]["ftfy (engine config)"] for r in results)
    only_ftfy = [r for r in results if not r["textmend"] and r["ftfy"]["ftfy (engine config)"]]
    print(f"both: {both}; ftfy (engine config) only: {len(only_ftfy)}")
    for r in only_ftfy[:15]:
        print(f"  {r['path']} ({r['codec']}): {r.get('difference', '')}")
    print(f"documents with a textmend edit outside the planted paragraph: {len(outside)}")
    for r in outside[:20]:
        e = r["outside"][0]
        print(
            f"  {r['path']}: {r['outside_count']} edits, "
            f"e.g. {e['original']!r} → {e['replacement']!r} ({e['category']})"
        )
    return numbers


def main(argv: list[str] | None = None) -> int:
    """Run the corpus (or its planted variant) and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="corpus directory")
    parser.add_argument("--sample", type=int, default=None, help="run N documents, spread evenly")
    parser.add_argument("--only", default=None, help="FORMAT/LANG, e.g. man/ja, man, /zh, html/")
    parser.add_argument("--json", type=Path, default=None, help="write every result here")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--planted", action="store_true", help="plant mojibake in one paragraph")
    args = parser.parse_args(argv)
    entries = choose(load(args.cache), args.only, args.sample)
    if not entries:
        sys.exit("no document matches")
    describe(entries)
    started = time.perf_counter()
    if args.planted:
        raw = run(planted_one, list(enumerate(entries)), args.jobs, len(entries))
        results = [r for r in raw if r is not None]
        numbers = report_planted(results)
    else:
        results = run(clean_one, entries, args.jobs, len(entries))
        numbers = report_clean(results)
    print(f"wall time: {time.perf_counter() - started:.0f} s with {args.jobs} jobs")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"summary": numbers, "results": results}, ensure_ascii=False, indent=1, default=dict
            ),
            encoding="utf-8",
        )
        print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
