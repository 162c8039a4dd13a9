"""Legacy decoding benchmark: real text re-encoded in its language's legacy code pages, decoded
without a declared charset by textmend's decoder and by chardet, in the same run.

Source texts are real files nobody here wrote:

- with `--corpus DIR`, the files `scripts/fetch_real_corpus.py` caches there, as listed in its
  `manifest.json` (its `files` list: `path` under DIR/files/, `package`, `language`; files
  that are not UTF-8 text are skipped);
- otherwise (or as well, with `--debs DIR`) Debian packages unpacked with `dpkg -x` into
  DIR/<package>/: man pages (`usr/share/man/<lang>/man*/*.gz`) and translation catalogues
  (`usr/share/locale/<lang>/LC_MESSAGES/*.mo`, every translated string, one per line). To get
  them (outside the repository):

      mkdir -p /tmp/legacy-src/debs && cd /tmp/legacy-src/debs
      apt-get download manpages-{ru,ru-dev,pl,pl-dev,ja,ja-dev,zh,de,de-dev,fr,fr-dev,es,es-dev} \\
          manpages-{it,pt-br,cs,uk,hu,ro,el,tr,nl,sv,da,fi} coreutils tar gettext apt dpkg \\
          findutils grep sed diffutils util-linux-locales gnupg-l10n nano wget gettext-base \\
          e2fsprogs-l10n libc-l10n procps bash-completion aptitude-common mc-data gimp-data \\
          iso-codes libgtk-3-common libglib2.0-data xkb-data tasksel-data debconf-i18n \\
          libgtk2.0-common gnupg-utils dialog
      for f in *.deb; do dpkg -x "$f" /tmp/legacy-src/x/"${f%%_*}"; done

Each text is encoded in each legacy code page of its language (zh: gb18030/gbk, big5 for
traditional text; ja: shift_jis/euc_jp/iso2022_jp; ko: euc_kr; ru/uk: cp1251/koi8-r/koi8-u;
Western European: cp1252/latin-1; Central European: cp1250/iso8859-2; el, tr, he, ar: their
windows and ISO pages), only where the whole text encodes, and decoded blind. "Right" means the
same text as the original (latin-1 read as cp1252 giving identical text is right). Reported per
language/codec and overall, on whole files and on 200-byte stretches holding non-ASCII (cut at
character boundaries), with a calibration table of textmend's confidence.

Tuning and reporting use different files: `--split tune` and `--split report` (the default)
divide the documents by a hash of their package where a language has texts from two or more
packages, else by a hash of the file's path. The engine's constants were set looking at the
tune split only.

Run: `.venv/bin/python bench/legacy_decoding.py [--split report|tune|all] [--misses N]`.
Exit status 0, or 2 when no source text was found.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
import resource
import struct
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import chardet

from textmend_server.decoding import decode
from textmend_server.engine import warm_up

DEFAULT_DEBS = Path("/tmp/legacy-src/x")
# Length of the stretches cut from each encoded text, as the issue asks.
STRETCH_BYTES = 200

# Language (as a locale or manifest names it) → benchmark group.
LANG_GROUP = {
    "zh_cn": "zh-Hans",
    "zh": "zh-Hans",
    "zh-hans": "zh-Hans",
    "zh_sg": "zh-Hans",
    "zh_tw": "zh-Hant",
    "zh_hk": "zh-Hant",
    "zh-hant": "zh-Hant",
    "ja": "ja",
    "ko": "ko",
    "ru": "ru",
    "uk": "uk",
    "el": "el",
    "tr": "tr",
    "he": "he",
    "ar": "ar",
    **{k: "western" for k in ("de", "fr", "es", "it", "pt", "pt_br", "nl", "sv", "da", "fi")},
    **{k: "western" for k in ("nb", "ca", "gl")},
    **{k: "central" for k in ("pl", "cs", "sk", "hu", "hr", "sl", "ro")},
    **{k: "baltic" for k in ("lt", "lv", "et")},
    **{k: "latin-3" for k in ("eo", "mt")},
}

# Benchmark group → the legacy code pages its texts are encoded in.
GROUP_CODECS = {
    "zh-Hans": ("gb18030", "gbk"),
    "zh-Hant": ("big5",),
    "ja": ("shift_jis", "euc_jp", "iso2022_jp"),
    "ko": ("euc_kr",),
    "ru": ("cp1251", "koi8-r"),
    "uk": ("cp1251", "koi8-u"),
    "western": ("cp1252", "latin-1"),
    "central": ("cp1250", "iso8859-2"),
    "el": ("cp1253", "iso8859-7"),
    "tr": ("cp1254", "iso8859-9"),
    "he": ("cp1255", "iso8859-8"),
    "ar": ("cp1256", "iso8859-6"),
    # Lithuanian, Latvian, Estonian: windows-1257, ISO-8859-13 (its ISO twin), ISO-8859-4 and
    # ISO-8859-10 (the older Baltic and Nordic pages; Estonian has no letter-pair model here).
    "baltic": ("cp1257", "iso8859-13", "iso8859-4", "iso8859-10"),
    # Esperanto and Maltese, which only ISO-8859-3 writes (no letter-pair model for either).
    "latin-3": ("iso8859-3",),
}

# Confidence buckets of the calibration table, highest first: (label, lower bound).
BUCKETS = (("≥0.99", 0.99), ("0.9–0.99", 0.9), ("0.7–0.9", 0.7), ("<0.7", -1.0))


@dataclass
class Doc:
    """One source text."""

    key: str  # where it came from, for listing misses
    package: str
    group: str
    text: str


def _read_mo(data: bytes) -> str:
    """Every translated string of a GNU .mo catalogue, one per line (plural forms too)."""
    if len(data) < 20:
        return ""
    magic = struct.unpack("<I", data[:4])[0]
    order = "<" if magic == 0x950412DE else ">" if magic == 0xDE120495 else None
    if order is None:
        return ""
    count, _originals, translations = struct.unpack(order + "3I", data[8:20])
    out = []
    for i in range(count):
        length, offset = struct.unpack(
            order + "2I", data[translations + 8 * i : translations + 8 * i + 8]
        )
        raw = data[offset : offset + length]
        if not raw or raw.startswith(b"Project-Id-Version") or b"Content-Type:" in raw[:400]:
            continue
        try:
            out.append(raw.decode("utf-8").replace("\x00", "\n"))
        except UnicodeDecodeError:
            return ""  # a catalogue in a legacy charset: not a known-good source
    return "\n".join(out)


def _group(lang: str) -> str | None:
    lang = lang.lower().replace("-", "_") if "_" in lang or lang.count("-") else lang.lower()
    return (
        LANG_GROUP.get(lang)
        or LANG_GROUP.get(lang.replace("_", "-"))
        or LANG_GROUP.get(lang.split("_")[0].split("@")[0])
    )


def from_debs(root: Path) -> list[Doc]:
    """Man pages and .mo catalogues of the packages unpacked under root/<package>/."""
    docs: list[Doc] = []
    for pkg in sorted(p for p in root.iterdir() if p.is_dir()):
        for page in sorted(pkg.glob("usr/share/man/*/man*/*.gz")):
            group = _group(page.parts[len(pkg.parts) + 3])
            if group is None:
                continue
            try:
                text = gzip.decompress(page.read_bytes()).decode("utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            docs.append(Doc(str(page.relative_to(root)), pkg.name, group, text))
        for mo in sorted(pkg.glob("usr/share/locale/*/LC_MESSAGES/*.mo")):
            group = _group(mo.parts[len(pkg.parts) + 3])
            if group is None:
                continue
            text = _read_mo(mo.read_bytes())
            if text:
                docs.append(Doc(str(mo.relative_to(root)), pkg.name, group, text))
    return docs


def from_manifest(root: Path) -> list[Doc]:
    """The files of a corpus cached by scripts/fetch_real_corpus.py, per its manifest.json.

    The manifest (as that script writes it) is an object whose `files` list has one entry per
    document: `path` relative to root/files/, `package`, `language` (a locale such as `de`,
    `zh-CN`, `pt-BR`), `format`. Files are stored as UTF-8 text already (man pages gunzipped,
    `.mo` catalogues as the text of their strings), so they are read as they are.
    """
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    entries = manifest["files"] if isinstance(manifest, dict) else manifest
    docs: list[Doc] = []
    for entry in entries:
        group = _group(str(entry.get("language") or ""))
        if group is None:
            continue
        try:
            text = (root / "files" / entry["path"]).read_text("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        docs.append(Doc(entry["path"], str(entry["package"]), group, text))
    return docs


def split_of(docs: list[Doc]) -> dict[str, str]:
    """Each document's split, 'tune' or 'report': by package where its group has texts from
    two or more packages, else by file."""
    packages: dict[str, set[str]] = defaultdict(set)
    for d in docs:
        packages[d.group].add(d.package)
    out = {}
    for d in docs:
        unit = d.package if len(packages[d.group]) > 1 else d.key
        digest = hashlib.sha1(unit.encode()).digest()[0]
        out[d.key] = "tune" if digest % 2 == 0 else "report"
    return out


def stretches(text: str, codec: str, rng: random.Random, count: int) -> list[str]:
    """Up to count pieces of text, each encoding to at most STRETCH_BYTES bytes in codec and
    holding non-ASCII, cut at character boundaries (as text, so the truth is known)."""
    wide = [i for i, ch in enumerate(text) if ch > "\x7f"]
    out: list[str] = []
    for _ in range(count * 3):
        if not wide or len(out) >= count:
            break
        at = rng.choice(wide)
        start = max(0, at - rng.randrange(0, 60))
        end = start
        size = 0
        while end < len(text):
            step = len(text[end].encode(codec, "replace"))
            if size + step > STRETCH_BYTES:
                break
            size += step
            end += 1
        while end > start and len(text[start:end].encode(codec)) > STRETCH_BYTES:
            end -= 1  # stateful codecs (ISO-2022) spend escape bytes
        piece = text[start:end]
        if not piece.isascii():
            out.append(piece)
    return out


@dataclass
class Tally:
    """Right/total counts of both decoders on one kind of item."""

    total: int = 0
    textmend: int = 0
    chardet: int = 0


def _chardet_text(content: bytes) -> str | None:
    guess = chardet.detect(content).get("encoding")
    if not guess:
        return None
    try:
        return content.decode(guess)
    except (UnicodeDecodeError, LookupError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=Path(".cache/real-corpus"))
    parser.add_argument("--debs", type=Path, default=DEFAULT_DEBS)
    parser.add_argument("--split", choices=("report", "tune", "all"), default="report")
    parser.add_argument("--files", type=int, default=40, help="whole files per language/codec")
    parser.add_argument("--pieces", type=int, default=3, help="stretches per file")
    parser.add_argument("--max-bytes", type=int, default=150_000, help="skip larger files")
    parser.add_argument("--misses", type=int, default=0, help="list this many misses")
    parser.add_argument("--only", default="", help="comma-separated groups to run")
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args(argv)

    docs: list[Doc] = []
    if (args.corpus / "manifest.json").exists():
        docs += from_manifest(args.corpus)
    if args.debs.is_dir() and (not docs or args.debs != DEFAULT_DEBS):
        docs += from_debs(args.debs)
    if not docs:
        print("no source texts: see the docstring for how to get them", file=sys.stderr)
        return 2
    splits = split_of(docs)
    if args.split != "all":
        docs = [d for d in docs if splits[d.key] == args.split]
    only = set(filter(None, args.only.split(",")))
    rng = random.Random(args.seed)

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    warm_up()
    decode("Žluťoučký kůň úpěl ďábelské ódy".encode("cp1250"))
    warm_seconds = time.perf_counter() - started
    warm_memory = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024

    whole: dict[tuple[str, str], Tally] = defaultdict(Tally)
    piece: dict[tuple[str, str], Tally] = defaultdict(Tally)
    calibration: dict[str, list[int]] = {label: [0, 0] for label, _ in BUCKETS}
    misses: list[str] = []
    seconds = {"textmend": 0.0, "chardet": 0.0}
    by_group: dict[str, list[Doc]] = defaultdict(list)
    for d in docs:
        by_group[d.group].append(d)
    for group in sorted(by_group):
        if only and group not in only:
            continue
        pool = by_group[group][:]
        rng.shuffle(pool)
        for codec in GROUP_CODECS[group]:
            used = 0
            for d in pool:
                if used >= args.files:
                    break
                try:
                    content = d.text.encode(codec)
                except UnicodeEncodeError:
                    continue
                if d.text.isascii() or len(content) > args.max_bytes:
                    continue
                used += 1
                items = [(whole, d.text, content)]
                for text in stretches(d.text, codec, rng, args.pieces):
                    items.append((piece, text, text.encode(codec)))
                for table, truth, raw in items:
                    tally = table[(group, codec)]
                    tally.total += 1
                    t0 = time.perf_counter()
                    got = decode(raw)
                    t1 = time.perf_counter()
                    theirs = _chardet_text(raw)
                    t2 = time.perf_counter()
                    seconds["textmend"] += t1 - t0
                    seconds["chardet"] += t2 - t1
                    right = got.text == truth
                    tally.textmend += right
                    tally.chardet += theirs == truth
                    for label, low in BUCKETS:
                        if got.confidence >= low:
                            calibration[label][0] += 1
                            calibration[label][1] += right
                            break
                    if not right and len(misses) < args.misses:
                        kind = "file" if table is whole else "piece"
                        names = ", ".join(
                            f"{c.name}:{c.implausibility}" for c in got.candidates[:4]
                        )
                        misses.append(
                            f"{group}/{codec} {kind} {d.key}: read as {got.encoding} "
                            f"({got.confidence}) [{names}] {got.text[:80]!r}"
                        )

    def pct(n: int, total: int) -> str:
        return f"{100.0 * n / total:6.2f}%" if total else "     -"

    print(f"split: {args.split}; documents: {len(docs)}")
    print(f"{'language/codec':22} {'files':>6} {'textmend':>9} {'chardet':>9}"
          f" {'stretches':>10} {'textmend':>9} {'chardet':>9}")  # fmt: skip
    keys = sorted(set(whole) | set(piece))
    for key in keys:
        w, p = whole[key], piece[key]
        print(
            f"{key[0] + '/' + key[1]:22} {w.total:6} {pct(w.textmend, w.total):>9} "
            f"{pct(w.chardet, w.total):>9} {p.total:10} {pct(p.textmend, p.total):>9} "
            f"{pct(p.chardet, p.total):>9}"
        )
    print("\nper language family")
    for group in sorted({k[0] for k in keys}):
        w = Tally(*(sum(getattr(t, f) for k, t in whole.items() if k[0] == group)
                    for f in ("total", "textmend", "chardet")))  # fmt: skip
        p = Tally(*(sum(getattr(t, f) for k, t in piece.items() if k[0] == group)
                    for f in ("total", "textmend", "chardet")))  # fmt: skip
        print(
            f"{group:22} {w.total:6} {pct(w.textmend, w.total):>9} "
            f"{pct(w.chardet, w.total):>9} {p.total:10} {pct(p.textmend, p.total):>9} "
            f"{pct(p.chardet, p.total):>9}"
        )
    wt = Tally(
        *(sum(getattr(t, f) for t in whole.values()) for f in ("total", "textmend", "chardet"))
    )
    pt = Tally(
        *(sum(getattr(t, f) for t in piece.values()) for f in ("total", "textmend", "chardet"))
    )
    print(
        f"{'overall':22} {wt.total:6} {pct(wt.textmend, wt.total):>9} "
        f"{pct(wt.chardet, wt.total):>9} {pt.total:10} {pct(pt.textmend, pt.total):>9} "
        f"{pct(pt.chardet, pt.total):>9}"
    )
    print("\ntextmend confidence   decodings   right")
    for label, _ in BUCKETS:
        n, r = calibration[label]
        print(f"{label:20} {n:10} {pct(r, n):>8}")
    items = wt.total + pt.total
    print(
        f"\ntime per decoding: textmend {1000 * seconds['textmend'] / max(items, 1):.1f} ms, "
        f"chardet {1000 * seconds['chardet'] / max(items, 1):.1f} ms; warm-up "
        f"{warm_seconds:.2f} s, {warm_memory / 2**20:.1f} MB more peak memory"
    )
    for line in misses:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
