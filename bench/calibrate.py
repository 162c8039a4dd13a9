"""How well the CJK repairs' confidences predict that a repair is exactly right, and the fit
that sets them.

    .venv/bin/python bench/calibrate.py --check-seeds 90210             # the table, as shipped
    .venv/bin/python bench/calibrate.py --fit-seeds 7,11,13 --check-seeds 17,19   # refit

Uses the corpora and the corruption of `bench/cjk_bench.py`. For every phase-slip reading with
the margin to edit on generated GBK documents (simplified and traditional), Big5 documents
(traditional) and Shift-JIS documents (Japanese), those the confidence floor reports instead
of applying included, and every wrong-codec repair
on the benchmark's codec pairs, it records the repair's confidence, the features the
confidence is computed from, and whether the repair is exactly right (its replacement is
what the clean text holds there). `--fit-seeds` fits the two logistic models of
`textmend_server.cjk.slip.stage.confidence` and `textmend_server.cjk.codecrun.fill_confidence`
on those seeds and prints their weights; `--check-seeds` prints, per confidence band, how many
repairs fell in it, their mean confidence and how many were right (with the shipped
confidences, and with the refitted ones when `--fit-seeds` is given).
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
import random
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import cjk_bench as cb  # noqa: E402
from corruptors import diff_spans  # noqa: E402

from textmend_server.cjk import find_phase_slips, find_wrong_codec_runs  # noqa: E402
from textmend_server.cjk.slip import stage  # noqa: E402

Row = dict[str, float]


# The generated slips each codec's weights are fitted to: the corpora (simplified and
# traditional People's Daily for GBK, traditional for Big5, hironsan's Japanese for
# Shift-JIS) and `cjk_bench.py`'s corruption of each. Big5 and Shift-JIS documents hold fewer
# slips (no pinyin to cut runs, a slip in 250 characters): twice as many documents are read.
SLIP_CODECS = ("gbk", "big5", "shift_jis")
_GBK_DAMAGE = {"pinyin": True, "trigger_p": 0.85, "random_rate": 0.0}
_OTHER_DAMAGE = {"pinyin": False, "trigger_p": 0.0, "random_rate": 0.004}


def _slip_corpora(codec: str) -> list[list[str]]:
    if codec == "shift_jis":
        return [cb.japanese()]
    daily = cb.people_daily()
    half = len(daily) // 2
    trad = cb.traditional(daily[half : half + 3000])
    return [daily[:half], trad] if codec == "gbk" else [trad]


def slip_rows(seeds: Sequence[int], docs: int, codec: str = "gbk") -> list[Row]:
    """One row per phase-slip reading with the margin to edit on documents generated in
    codec: gap, margin, length, pairs lost whole, confidence, right. Readings the floors
    (`stage.MIN_EDIT_CONFIDENCE`, `stage.MIN_EDIT_GAP`) report instead of applying are rows
    too: the fit is of the confidence, not of the floors."""
    seen: list[tuple[float, float, int]] = []
    shipped, floor, gap_floor = stage.confidence, stage.MIN_EDIT_CONFIDENCE, stage.MIN_EDIT_GAP

    def recording(
        margin: float, gap: float, length: int, lost: int = 0, codec: str = "gbk"
    ) -> float:
        seen.append((margin, gap, lost))
        return shipped(margin, gap, length, lost, codec)

    damage = _GBK_DAMAGE if codec == "gbk" else _OTHER_DAMAGE
    n = docs if codec == "gbk" else 2 * docs
    rows: list[Row] = []
    stage.confidence = recording
    stage.MIN_EDIT_CONFIDENCE = 0.0
    stage.MIN_EDIT_GAP = 0.0
    try:
        for seed in seeds:
            for paras in _slip_corpora(codec):
                paras = [p for p in paras if cb._encodable(p, codec)]
                rng = random.Random(seed)
                for c in cb.corrupted_documents(paras, n, rng, seed, codec, **damage):
                    seen.clear()
                    found = find_phase_slips(c.text)
                    if len(seen) != len(found):
                        continue  # starved: proposals made without a fresh confidence
                    applied = [(p, f) for p, f in zip(found, seen, strict=True) if not p.flag_only]
                    rows += _judge_slips(c.text, c.expected, applied)
    finally:
        stage.confidence, stage.MIN_EDIT_CONFIDENCE, stage.MIN_EDIT_GAP = shipped, floor, gap_floor
    return rows


def _judge_slips(text: str, expected: str, applied) -> list[Row]:
    # Apply the repairs, then the later stages; a repair is right when the finished text
    # agrees with the clean one over the repair's span.
    pieces, spans, last, pos = [], [], 0, 0
    for p, feats in applied:
        pieces.append(text[last : p.start])
        pos += p.start - last
        spans.append((pos, pos + len(p.replacement), p, feats))
        pieces.append(p.replacement)
        pos += len(p.replacement)
        last = p.end
    pieces.append(text[last:])
    repaired = "".join(pieces)
    finished = cb.repair(repaired)
    ops = difflib.SequenceMatcher(None, repaired, finished, autojunk=False).get_opcodes()

    def moved(i: int) -> int:
        for tag, i1, i2, j1, _ in ops:
            if i1 <= i < i2 or (i == i2 and tag == "equal"):
                return j1 + (i - i1) if tag == "equal" else j1
        return len(finished)

    wrong_spans = diff_spans(finished, expected)
    rows = []
    for a, b, p, (margin, gap, lost) in spans:
        ma, mb = moved(a), moved(b)
        wrong = any(
            (i1 < mb and i2 > ma) or (i1 == i2 and ma <= i1 <= mb) for i1, i2, *_ in wrong_spans
        )
        rows.append(
            {"margin": margin, "gap": gap, "length": len(p.replacement), "lost": lost,
             "conf": p.confidence, "right": float(not wrong)}
        )  # fmt: skip
    return rows


def codec_rows(seeds: Sequence[int], runs: int) -> list[Row]:
    """One row per wrong-codec repair: bytes filled, length, confidence, right."""
    daily = cb.people_daily()
    half = len(daily) // 2
    simp, trad = daily[:half], cb.traditional(daily[half : half + 3000])
    ja, ko = cb.japanese(), cb.korean()
    rows: list[Row] = []
    for seed in seeds:
        rng = random.Random(seed + 1)
        for _, paras, written, read_as in cb.wrong_codec_cases(simp, trad, ja, ko):
            for clean, text, _ in cb.wrong_codec_samples(rng, paras, written, read_as, runs):
                for p in find_wrong_codec_runs(text):
                    rows.append(
                        {"unknown": text.count("\ufffd", p.start, p.end),
                         "length": len(p.replacement), "conf": p.confidence,
                         "right": float(p.replacement in clean)}
                    )  # fmt: skip
    return rows


def slip_features(r: Row) -> list[float]:
    """As `textmend_server.cjk.slip.stage.confidence` reads a repair."""
    n = max(r["length"], 1)
    return [
        1.0,
        min(max(r["gap"], 0.0), 20.0),
        math.log(n),
        min(max(r["margin"], 0) / n, 20.0),
        math.log1p(r["lost"]),
    ]


def slip_features_no_lost(r: Row) -> list[float]:
    """`slip_features` but the pairs lost whole: Big5's and Shift-JIS's weights are fitted on
    their readings that lost none, and keep GBK's weight for them."""
    return slip_features(r)[:4]


def predictor_with_lost(w: list[float], lost_weight: float) -> Callable[[Row], float]:
    """The confidence of weights fitted without the lost pairs, and lost_weight for them."""
    return lambda r: (
        1.0
        / (
            1.0
            + math.exp(
                -sum(a * b for a, b in zip(w, slip_features_no_lost(r), strict=True))
                - lost_weight * math.log1p(r["lost"])
            )
        )
    )


def codec_features(r: Row) -> list[float]:
    """As `textmend_server.cjk.codecrun.fill_confidence` reads a repair."""
    return [1.0, math.log1p(r["unknown"]), r["unknown"] / max(r["length"], 1)]


def fit(rows: list[Row], features: Callable[[Row], list[float]], steps: int = 6000) -> list[float]:
    """Logistic regression of right on features, by gradient ascent on the log-likelihood."""
    xs = [features(r) for r in rows]
    ys = [r["right"] for r in rows]
    # Scale each feature for the ascent; the weights are returned unscaled.
    scale = [max(1e-9, max(abs(x[i]) for x in xs)) for i in range(len(xs[0]))]
    xs = [[v / s for v, s in zip(x, scale, strict=True)] for x in xs]
    w = [0.0] * len(scale)
    for _ in range(steps):
        grad = [0.0] * len(w)
        for x, y in zip(xs, ys, strict=True):
            p = 1.0 / (1.0 + math.exp(-sum(a * b for a, b in zip(w, x, strict=True))))
            for i, v in enumerate(x):
                grad[i] += (y - p) * v
        w = [wi + 2.0 * g / len(xs) for wi, g in zip(w, grad, strict=True)]
    return [wi / s for wi, s in zip(w, scale, strict=True)]


def predictor(w: list[float], features: Callable[[Row], list[float]]) -> Callable[[Row], float]:
    return lambda r: (
        1.0 / (1.0 + math.exp(-sum(a * b for a, b in zip(w, features(r), strict=True))))
    )


def table(rows: list[Row], conf: Callable[[Row], float], title: str) -> None:
    print(f"  {title}: {len(rows)} repairs, {sum(r['right'] for r in rows):.0f} right")
    bands: dict[int, list[float]] = {}
    for r in rows:
        c = conf(r)
        band = bands.setdefault(min(int(c * 5), 4), [0, 0.0, 0.0])
        band[0] += 1
        band[1] += c
        band[2] += r["right"]
    for k in sorted(bands, reverse=True):
        n, total, right = bands[k]
        print(
            f"    {k / 5:.1f}-{(k + 1) / 5:.1f}: {n:4d} repairs, mean confidence "
            f"{total / n:.2f}, right {100 * right / n:.0f}%"
        )


def floors(rows: list[Row], conf: Callable[[Row], float], title: str) -> None:
    """What each confidence floor would let through: readings applied, right and wrong."""
    print(f"  {title}, by floor:")
    for floor in (0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95):
        applied = [r for r in rows if conf(r) >= floor]
        right = sum(r["right"] for r in applied)
        print(
            f"    {floor:.2f}: {len(applied):4d} applied, {right:.0f} right, "
            f"{len(applied) - right:.0f} wrong"
        )


def _seeds(text: str) -> list[int]:
    return [int(s) for s in re.split(r"[,\s]+", text.strip()) if s]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fit-seeds", type=_seeds, default=[], help="seeds to fit the models on")
    ap.add_argument("--check-seeds", type=_seeds, default=[90210], help="seeds to measure on")
    ap.add_argument("--docs", type=int, default=40, help="documents per script and seed")
    ap.add_argument("--runs", type=int, default=30, help="wrong-codec runs per pair and seed")
    args = ap.parse_args(argv)
    fitted: dict[str, Callable[[Row], float]] = {}
    if args.fit_seeds:
        slips = slip_rows(args.fit_seeds, args.docs)
        codecs = codec_rows(args.fit_seeds, args.runs)
        ws, wc = fit(slips, slip_features), fit(codecs, codec_features)
        print(f"fitted on seeds {args.fit_seeds}: {len(slips)} slip repairs, {len(codecs)} codec")
        print(
            "  confidence, gbk (bias, gap, log length, margin per char, log1p lost):",
            [round(x, 4) for x in ws],
        )
        fitted = {"gbk": predictor(ws, slip_features), "codec": predictor(wc, codec_features)}
        for codec in SLIP_CODECS[1:]:
            rows = [r for r in slip_rows(args.fit_seeds, args.docs, codec) if not r["lost"]]
            w = fit(rows, slip_features_no_lost)
            print(
                f"  confidence, {codec} ({len(rows)} repairs with no pair lost; bias, gap, "
                "log length, margin per char; log1p lost as gbk's):",
                [round(x, 4) for x in w],
            )
            fitted[codec] = predictor_with_lost(w, ws[4])
        print("  fill_confidence (bias, log1p unknown, unknown share):", [round(x, 4) for x in wc])
    print(f"measured on seeds {args.check_seeds}")
    for codec in SLIP_CODECS:
        slips = slip_rows(args.check_seeds, args.docs, codec)
        title = f"phase-slip repairs, {codec}"
        table(slips, lambda r: r["conf"], f"{title}, shipped confidence")
        floors(slips, lambda r: r["conf"], f"{title}, shipped confidence")
        if fitted:
            table(slips, fitted[codec], f"{title}, refitted")
            floors(slips, fitted[codec], f"{title}, refitted")
    codecs = codec_rows(args.check_seeds, args.runs)
    table(codecs, lambda r: r["conf"], "wrong-codec repairs, shipped confidence")
    if fitted:
        table(codecs, fitted["codec"], "wrong-codec repairs, refitted")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
