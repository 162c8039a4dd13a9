"""How a ready word trigram model of Chinese would do beside the CJK character model.

    .venv/bin/pip install ufal.kenlm        # KenLM's Python module (a wheel; nothing to build)
    .venv/bin/python bench/word_model.py    # fetches the model once (14 MB), then a few minutes

The model is fcitx's KenLM word trigram of simplified Chinese (164,887 words, 1.98M bigrams,
634k trigrams) from Debian's libime-data-language-model (LGPL-2.1+; pinned below, fetched
with `apt-get download` into `.cache/word-model/`). It is not part of textmend: this measures
whether it should be. Three measurements, on the benchmark's own corpora and corruption
(`cjk_bench.py`):

1. **Which models text better.** Nats per Han character of People's Daily paragraphs (news,
   which neither model was built from) under `lm.Scorer` and under the word model (each Han
   run a sentence, cut into words the way it likes best).
2. **A second opinion on phase-slip readings.** For every reading the stage finds on the
   calibration documents (`calibrate.py`'s), the word model's gap between that reading and
   the best of the search's other readings (`search.ranked_readings`), each weighed against
   the text as it stands. The confidence is fitted with and without that gap (`--fit-seeds`)
   and compared on other seeds (`--check-seeds`): log-loss, and what each floor lets through.
3. **The sample article.** The confidence each of its repairs would get with the gap.

Figures are in docs/internals.md.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "scripts"))

import calibrate as cal  # noqa: E402
import cjk_bench as cb  # noqa: E402
from debian_packages import FetchError, download, extract  # noqa: E402

from textmend_server.cjk import find_phase_slips  # noqa: E402
from textmend_server.cjk.lm import Scorer, get_model  # noqa: E402
from textmend_server.cjk.slip import search, stage  # noqa: E402

CACHE = ROOT / ".cache" / "word-model"
PACKAGE, VERSION = "libime-data-language-model", "1.0.16-1"
MODEL_IN_PACKAGE = "usr/lib/x86_64-linux-gnu/libime/zh_CN.lm"
MODEL_SHA256 = "e4097ca9ca1082928c2ea7d5e368080a696611efa0714dfe563c769f26a415d2"

# The longest word tried when cutting a run: of wordfreq's Chinese words in the model's
# vocabulary, 20 of 131,472 are longer.
MAX_WORD = 6
# The text around a reading the word model reads: characters before the trigger, after the
# run; how many of the search's best distinct readings it compares; the gap of a reading
# with no rival (as the search's own `MAX_GAP`).
LEFT, RIGHT, COMPARED, CAP = 8, 4, 8, 10.0
_HAN = re.compile(r"[\u4e00-\u9fff]+")


def fetch() -> Path:
    """The model file, fetched and unpacked on first use, checked against its digest."""
    (CACHE / "debs").mkdir(parents=True, exist_ok=True)
    try:
        deb, _ = download(PACKAGE, VERSION, CACHE / "debs", allow_newer=False)
        extract(deb, CACHE / "root")
    except FetchError as e:
        sys.exit(f"word_model.py: {e}")
    path = CACHE / "root" / MODEL_IN_PACKAGE
    if hashlib.sha256(path.read_bytes()).hexdigest() != MODEL_SHA256:
        sys.exit(f"word_model.py: {path} is not the model measured (its SHA-256 differs)")
    return path


class WordTrigram:
    """ln P of Han runs (simplified forms) under the KenLM model, best segmentation."""

    def __init__(self, path: Path) -> None:
        try:
            import kenlm
        except ImportError:
            sys.exit("word_model.py needs KenLM's module: .venv/bin/pip install ufal.kenlm")
        self._kenlm = kenlm
        self._model = kenlm.Model(str(path))
        self._memo: dict[str, float] = {}

    def run_logp(self, run: str) -> float:
        """ln P of run cut into the words that make it most likely. No sentence marks: the
        model has none (`<s>` scores as no context, and `</s>` after 公司 costs 15.6 nats)."""
        hit = self._memo.get(run)
        if hit is not None:
            return hit
        kenlm, model = self._kenlm, self._model
        start = kenlm.State()
        model.NullContextWrite(start)
        best: list[tuple[float, object] | None] = [(0.0, start)] + [None] * len(run)
        for e in range(1, len(run) + 1):
            for j in range(max(0, e - MAX_WORD), e):
                here, word = best[j], run[j:e]
                if here is None or (e - j > 1 and word not in model):
                    continue
                after = kenlm.State()
                score = here[0] + model.BaseScore(here[1], word, after)
                if best[e] is None or score > best[e][0]:
                    best[e] = (score, after)
        self._memo[run] = out = best[-1][0] * math.log(10)
        return out

    def reading_logp(self, scorer: Scorer, text: str, start: int) -> float:
        """ln P of text[start:] after text[:start]: Han runs by the word model (a run that
        reaches into text[:start] whole), every other character by scorer."""
        simplified = scorer.model.simplified(text)
        total, run_from, hist = 0.0, -1, text[:start][-4:]
        for k in range(start, len(text)):
            ch = text[k]
            if _HAN.match(ch):
                if run_from < 0:
                    run_from = k
                    while run_from > 0 and _HAN.match(text[run_from - 1]):
                        run_from -= 1
            else:
                if run_from >= 0:
                    total += self.run_logp(simplified[run_from:k])
                    run_from = -1
                total += scorer.lp(hist, ch)
            hist = (hist + ch)[-4:]
        if run_from >= 0:
            total += self.run_logp(simplified[run_from:])
        return total


def entropy(words: WordTrigram, paragraphs: int) -> None:
    """Nats per Han character of People's Daily paragraphs under both models."""
    paras = random.Random(5).sample(cb.people_daily(), paragraphs)
    model = get_model("zh")
    scorer = Scorer(model, False)
    by_words = by_scorer = 0.0
    han = 0
    for p in paras:
        for m in _HAN.finditer(p):
            by_words += words.run_logp(model.simplified(m.group()))
            han += len(m.group())
        hist = ""
        for ch in p:
            lp = scorer.lp(hist[-4:], ch)
            if _HAN.match(ch):
                by_scorer += lp
            hist += ch
    print(f"1. nats per Han character, {han:,} characters of {paragraphs} paragraphs:")
    print(f"   lm.Scorer {-by_scorer / han:.3f}, word trigram {-by_words / han:.3f}")


def second_opinions(words: WordTrigram) -> dict[tuple[float, float], float]:
    """Make the search note, for each reading it returns, the word model's gap (by the
    reading's margin and gap, which is what `stage.confidence` is called with)."""
    noted: dict[tuple[float, float], float] = {}
    original = search._repair_at

    def noting(text, i, c, folded, scorer, s):  # type: ignore[no-untyped-def]
        rep = original(text, i, c, folded, scorer, s)
        if rep is None or scorer.plain or scorer.model.lang != "zh":
            return rep
        ranked = search.ranked_readings(text, i, c, folded, scorer, s)
        left = text[max(0, i - LEFT) : i]
        kept_at: dict[int, float] = {}
        scores, seen = [], set()
        for _, end, out, _, _ in ranked:
            if (end, out) in seen:
                continue
            seen.add((end, out))
            right = text[end : end + RIGHT]
            if end not in kept_at:
                as_is = left + text[i:end] + right
                kept_at[end] = words.reading_logp(scorer, as_is, len(left))
            reading = left + out + right
            scores.append(words.reading_logp(scorer, reading, len(left)) - kept_at[end])
            if len(scores) == COMPARED:
                break
        gap = CAP if len(scores) < 2 else max(-CAP, min(CAP, scores[0] - max(scores[1:])))
        noted[rep.margin, rep.gap] = gap
        return rep

    search._repair_at = noting
    return noted


def with_gaps(rows: list[cal.Row], noted: dict[tuple[float, float], float]) -> list[cal.Row]:
    """The rows the word model judged, each with its gap."""
    return [
        {**r, "second": noted[r["margin"], r["gap"]]}
        for r in rows
        if (r["margin"], r["gap"]) in noted
    ]


def features(r: cal.Row) -> list[float]:
    """The shipped confidence's features and the word model's gap."""
    return [*cal.slip_features(r), r["second"]]


def log_loss(rows: list[cal.Row], predict) -> float:  # type: ignore[no-untyped-def]
    return -sum(
        math.log(max(1e-9, predict(r) if r["right"] else 1 - predict(r))) for r in rows
    ) / len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--paragraphs", type=int, default=300)
    ap.add_argument("--fit-seeds", type=cal._seeds, default=[7, 11, 13])
    ap.add_argument("--check-seeds", type=cal._seeds, default=[17, 19])
    ap.add_argument("--docs", type=int, default=30, help="documents per script and seed")
    args = ap.parse_args(argv)
    words = WordTrigram(fetch())
    entropy(words, args.paragraphs)

    noted = second_opinions(words)
    fit_rows = with_gaps(cal.slip_rows(args.fit_seeds, args.docs), noted)
    check_rows = with_gaps(cal.slip_rows(args.check_seeds, args.docs), noted)
    alone = cal.predictor(cal.fit(fit_rows, cal.slip_features), cal.slip_features)
    w = cal.fit(fit_rows, features)
    judged = cal.predictor(w, features)
    print(
        f"2. phase-slip readings: fitted on seeds {args.fit_seeds} ({len(fit_rows)}), "
        f"checked on {args.check_seeds} ({len(check_rows)})"
    )
    print(f"   weights with the gap: {[round(x, 4) for x in w]}")
    print(
        f"   log-loss without the gap {log_loss(check_rows, alone):.4f}, "
        f"with it {log_loss(check_rows, judged):.4f}"
    )
    cal.floors(check_rows, alone, "without the gap")
    cal.floors(check_rows, judged, "with the gap")

    print("3. the sample article's repairs: confidence as shipped, and with the gap")
    sample = (ROOT / "tests" / "fixtures" / "fortune-openai-departures.txt").read_text("utf-8")
    seen: list[tuple[float, float, int, int]] = []
    shipped = stage.confidence

    def recording(
        margin: float, gap: float, length: int, lost: int = 0, codec: str = "gbk"
    ) -> float:
        seen.append((margin, gap, length, lost))
        return shipped(margin, gap, length, lost, codec)

    stage.confidence = recording
    try:
        found = find_phase_slips(sample)
    finally:
        stage.confidence = shipped
    for p, (margin, gap, length, lost) in zip(found, seen, strict=True):
        row = {"margin": margin, "gap": gap, "length": length, "lost": lost}
        second = noted.get((margin, gap))
        after = judged({**row, "second": second}) if second is not None else float("nan")
        print(
            f"   {sample[p.start : p.end]!r:>22} -> {p.replacement!r:<14} "
            f"{p.confidence:.2f} -> {after:.2f} (word model's gap {second:.1f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
