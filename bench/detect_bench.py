"""Encoding detection benchmark: chardet alone, charset-normalizer alone and textmend's decoder.

Reads chardet's own test files from `.cache/peer/charset_corpus/` (or --corpus DIR): 330 files
of chardet 5.2.0's `tests/`, which `scripts/fetch_peer_data.py` writes (run it first), one
folder per true encoding, sometimes with a language suffix. Reports, for each detector, on
whole files and on their first 20, 50 and 200 bytes (cut back to a character boundary of the
true encoding):

- label accuracy: the reported encoding is the true one or a superset that decodes the same
  bytes to the same text or nearly (GB2312 → GBK/GB18030, Shift_JIS → cp932, EUC-KR → cp949,
  ISO-8859-n → its windows-125x sibling, TIS-620 → windows-874, ASCII → UTF-8/windows-1252, a
  BOM-marked UTF-16/32 → its byte order): the table chardet's own evaluation uses;
- same-text accuracy: the text the detector's answer gives equals the text the true encoding
  gives (what a caller actually needs);
- seconds spent in the detector (textmend: the whole `decode`, text included).

Run: `.venv/bin/python bench/detect_bench.py` (`--no-normalizer` to skip charset-normalizer,
`--misses` to list the files each detector gets wrong). Exit status 0, or 2 when the corpus is
not there.
"""

from __future__ import annotations

import argparse
import codecs
import sys
import time
from collections.abc import Callable
from pathlib import Path

import chardet

from textmend_server.decoding import decode
from textmend_server.engine import warm_up

# Written by scripts/fetch_peer_data.py (chardet 5.2.0's tests/ from its PyPI sdist).
CORPUS = Path(__file__).resolve().parents[1] / ".cache" / "peer" / "charset_corpus"
PREFIXES = (None, 20, 50, 200)

# True encoding → labels that also count as right (supersets, BOM-resolved byte orders).
_ALSO_RIGHT = {
    "ascii": {"utf-8", "cp1252"},
    "gb2312": {"gbk", "gb18030"},
    "gbk": {"gb18030"},
    "big5": {"big5hkscs", "cp950"},
    "shift_jis": {"cp932", "shift_jis_2004"},
    "euc_jp": {"euc_jis_2004"},
    "euc_kr": {"cp949"},
    "tis-620": {"cp874", "iso8859-11"},
    "iso8859-1": {"cp1252"},
    "iso8859-2": {"cp1250"},
    "iso8859-5": {"cp1251"},
    "iso8859-6": {"cp1256"},
    "iso8859-7": {"cp1253"},
    "iso8859-8": {"cp1255"},
    "iso8859-9": {"cp1254"},
    "iso8859-13": {"cp1257"},
    "utf-8-sig": {"utf-8"},
    "utf-16": {"utf-16-le", "utf-16-be"},
    "utf-32": {"utf-32-le", "utf-32-be"},
}

# Of those, the true supersets: their decoding of the bytes counts as the true text too (they
# map a few characters differently, e.g. GB2312 A1AA is U+2015, GB18030 reads U+2014). The
# ISO-8859-n → windows-125x siblings for n > 1 are not supersets and are left out.
_SUPERSETS = {
    truth: labels
    for truth, labels in _ALSO_RIGHT.items()
    if not truth.startswith("iso8859-") or truth == "iso8859-1"
}

Detector = Callable[[bytes], tuple[str | None, str | None]]


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        return codecs.lookup(label).name
    except LookupError:
        return label.lower()


def true_encoding(folder: str) -> str:
    """The folder's encoding: its longest dash-separated prefix that Python knows."""
    parts = folder.split("-")
    for n in range(len(parts), 0, -1):
        if _known("-".join(parts[:n])):
            return _codec("-".join(parts[:n])) or folder
    return folder.lower()


def _known(name: str | None) -> bool:
    try:
        codecs.lookup(name or "")
    except LookupError:
        return False
    return True


def _text(content: bytes, codec: str | None) -> str | None:
    if not codec or not _known(codec):
        return None
    return content.decode(codec, errors="replace")


def truth_texts(content: bytes, codec: str) -> set[str]:
    """The texts the true encoding, or a superset of it, gives for content."""
    if not _known(codec):
        return set()
    texts = set()
    for name in (codec, *sorted(_SUPERSETS.get(codec, ()))):
        try:
            texts.add(content.decode(name))
        except UnicodeDecodeError:
            continue
    return texts or {content.decode(codec, errors="replace")}


def cut(content: bytes, size: int, codec: str) -> bytes:
    """The first size bytes, shortened to end at a character boundary of codec."""
    if not _known(codec) or len(content) <= size:
        return content[:size]
    for k in range(size, 0, -1):
        try:
            content[:k].decode(codec)
        except UnicodeDecodeError:
            continue
        return content[:k]
    return content[:size]


def detect_chardet(content: bytes) -> tuple[str | None, str | None]:
    codec = _codec(chardet.detect(content)["encoding"])
    return codec, _text(content, codec)


def detect_normalizer(content: bytes) -> tuple[str | None, str | None]:
    import charset_normalizer

    best = charset_normalizer.from_bytes(content).best()
    if best is None:
        return None, None
    return _codec(best.encoding), str(best)


def detect_textmend(content: bytes) -> tuple[str | None, str | None]:
    try:
        decoded = decode(content)
    except Exception:  # refused (binary-looking input): counts as a miss
        return None, None
    return decoded.encoding, decoded.text


def load(corpus: Path) -> list[tuple[str, str, bytes]]:
    """(relative path, true encoding, bytes) for every file in the corpus."""
    files = []
    for folder in sorted(p for p in corpus.iterdir() if p.is_dir()):
        truth = true_encoding(folder.name)
        for path in sorted(folder.iterdir()):
            if path.is_file():
                files.append((f"{folder.name}/{path.name}", truth, path.read_bytes()))
    return files


def run(
    files: list[tuple[str, str, bytes]], detectors: dict[str, Detector], misses: bool
) -> list[tuple[str, str, float, float, float]]:
    """Rows of (detector, input, label accuracy, same-text accuracy, seconds)."""
    rows = []
    for size in PREFIXES:
        inputs = [(n, t, c if size is None else cut(c, size, t)) for n, t, c in files]
        truths = [truth_texts(c, t) for _, t, c in inputs]
        for name, detect in detectors.items():
            right_label = right_text = 0
            seconds = 0.0
            for (path, truth, content), expected in zip(inputs, truths, strict=True):
                start = time.perf_counter()
                label, text = detect(content)
                seconds += time.perf_counter() - start
                label_ok = label == truth or label in _ALSO_RIGHT.get(truth, ())
                text_ok = text in expected
                right_label += label_ok
                right_text += text_ok
                if misses and not (label_ok and text_ok):
                    where = "whole" if size is None else f"{size}B"
                    print(f"  miss {name:10} {where:5} {path}: {label} (true {truth})")
            n = len(inputs)
            where = "whole" if size is None else f"first {size} B"
            rows.append((name, where, right_label / n, right_text / n, seconds))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--no-normalizer", action="store_true", help="skip charset-normalizer")
    parser.add_argument("--misses", action="store_true", help="list each detector's misses")
    args = parser.parse_args(argv)
    if not args.corpus.is_dir():
        print(f"skipped: no corpus at {args.corpus} (run scripts/fetch_peer_data.py)")
        return 2
    files = load(args.corpus)
    detectors: dict[str, Detector] = {"chardet": detect_chardet}
    if not args.no_normalizer:
        detectors["normalizer"] = detect_normalizer
    detectors["textmend"] = detect_textmend
    for detect in detectors.values():  # first calls load tables; time steady state only
        detect("warm up: 中文编码".encode("gbk"))
    warm_up()
    rows = run(files, detectors, args.misses)
    print(f"{len(files)} files, {sum(len(c) for _, _, c in files):,} bytes, from {args.corpus}")
    print(f"| {'detector':10} | {'input':13} | label acc | same text | seconds |")
    print(f"|{'-' * 12}|{'-' * 15}|----------:|----------:|--------:|")
    for name, where, label, text, seconds in rows:
        print(f"| {name:10} | {where:13} | {label:8.1%} | {text:8.1%} | {seconds:7.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
