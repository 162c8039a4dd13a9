"""Build the letter-pair tables of languages wordfreq has no list for, from Debian's spelling
dictionaries and translation catalogues: `server/textmend_server/letter_pairs.json`.

Why: the decoding of a legacy file is chosen by how each reading reads under letter-pair
models of the languages of its script (`langmodel`), built from wordfreq's word lists. A
language with no list is read as the modelled language its letters favour: Albanian's `ë`
(0xEB in windows-1252) reads better as Lithuanian's `ė` (0xEB in windows-1257), so every
Albanian windows-1252 text came back in windows-1257 at full confidence. The spelling
dictionaries Debian packages for LibreOffice and Hunspell list the word forms of those
languages; their letter pairs are what a model needs. Turkmen has no dictionary in Debian:
its words are those of two of the translation catalogues Debian ships for it.

What it does: `apt-get download` each package of `SOURCES` at its pinned version into
`CACHE/debs/`, `dpkg -x` it into `CACHE/root/`, and reads its words: a `.dic` word list in the
charset its `.aff` file names (a line is a word form, then `/` and affix flags), or the
translated strings of a `.mo` catalogue, split at spaces. It puts each word in the models'
letter form (`langmodel.letter_form`: lower-cased, marks and non-letters dropped) and counts
the letter pairs of all words of a language, a space marking each word's boundaries, each
word as often as its source lists it (a dictionary lists a form once: it carries no
frequencies). The table holds, per language, the counts and
where they came from (package, version, file, licence from the package's copyright file).

The table is committed; `--check` rebuilds it and fails if it differs (a test runs that).
Needs apt-get and a reachable Debian mirror; about 6 MB of packages, a few seconds.

    .venv/bin/python scripts/build_letter_tables.py            # writes the table
    .venv/bin/python scripts/build_letter_tables.py --check    # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian_packages import FetchError, download, extract

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "server"))

from textmend_server import langmodel  # noqa: E402

DEFAULT_CACHE = REPO / ".cache" / "letter-tables"
TABLE = REPO / "server" / "textmend_server" / "letter_pairs.json"


@dataclass(frozen=True)
class Source:
    """Words of a language: a Debian bookworm package at an exact version, the `.dic` word
    list or `.mo` catalogue in it, and its licence (from the package's copyright file)."""

    lang: str
    script: str
    package: str
    version: str
    path: str
    licence: str


SOURCES = (
    Source(
        "sq", "latin", "myspell-sq", "1.6.4-1.2", "usr/share/hunspell/sq_AL.dic",
        "GPL-2+ (Luan Kelmendi)",
    ),
    Source(
        "et", "latin", "myspell-et", "1:20030606-32", "usr/share/hunspell/et_EE.dic",
        "LGPL-2.1+ (Jaak Pruulmann; word list of the Institute of the Estonian Language)",
    ),
    Source(
        "af", "latin", "hunspell-af", "1:7.5.0-1", "usr/share/hunspell/af_ZA.dic",
        "LGPL-2.1+ (Dwayne Bailey, Fridel Wolff)",
    ),
    Source(
        "eo", "latin", "myspell-eo", "2.1.2000.02.25-61", "usr/share/hunspell/eo.dic",
        "GPL-2+ (Sergio Pokrovskij)",
    ),
    Source(
        "tk", "latin", "iso-codes", "4.15.0-1", "usr/share/locale/tk/LC_MESSAGES/iso_3166.mo",
        "LGPL-2.1+ (country names)",
    ),
    Source(
        "tk", "latin", "at-spi2-common", "2.46.0-5",
        "usr/share/locale/tk/LC_MESSAGES/at-spi2-core.mo", "LGPL-2+ (accessibility messages)",
    ),
)  # fmt: skip

# Charset names of `.aff` SET lines, as Python spells them.
_AFF_CHARSETS = {
    "ISO8859-1": "latin-1",
    "ISO8859-3": "iso8859-3",
    "ISO8859-15": "iso8859-15",
    "UTF-8": "utf-8",
}


def word_forms(dic: Path) -> list[str]:
    """The word forms a Hunspell `.dic` file lists, decoded in the charset its `.aff` names."""
    aff = dic.with_suffix(".aff").read_bytes()
    declared = re.search(rb"^SET\s+(\S+)", aff, re.MULTILINE)
    charset = _AFF_CHARSETS[declared.group(1).decode("ascii")] if declared else "utf-8"
    lines = dic.read_bytes().decode(charset).splitlines()[1:]  # the first line is a count
    return [word for line in lines if (word := re.split(r"[/\t ]", line, maxsplit=1)[0])]


def catalogue_words(mo: Path) -> list[str]:
    """The words of the translated strings of a GNU `.mo` catalogue (UTF-8), split at spaces."""
    data = mo.read_bytes()
    order = "<" if struct.unpack("<I", data[:4])[0] == 0x950412DE else ">"
    count, _originals, translations = struct.unpack(order + "3I", data[8:20])
    words: list[str] = []
    for i in range(count):
        length, offset = struct.unpack(
            order + "2I", data[translations + 8 * i : translations + 8 * i + 8]
        )
        text = data[offset : offset + length].decode("utf-8")
        if "Content-Type:" not in text:  # the header entry
            words.extend(text.replace("\x00", " ").split())
    return words


def pair_counts(words: list[str], script: str) -> dict[str, int]:
    """Letter-pair counts of words in the models' letter form, each word as often as listed."""
    kept = [w for w in langmodel.letter_form("\n".join(words), script).split("\n") if w]
    padded = " " + " ".join(w for w in kept if " " not in w) + " "
    counts = Counter(map(str.__add__, padded, padded[1:]))
    return dict(sorted(counts.items()))


def build(cache: Path, allow_newer: bool) -> dict[str, dict[str, Any]]:
    """The table, from the packages (downloaded and unpacked into cache as needed)."""
    words: dict[str, list[str]] = {}
    table: dict[str, dict[str, Any]] = {}
    (cache / "debs").mkdir(parents=True, exist_ok=True)
    for source in SOURCES:
        started = time.monotonic()
        deb, version = download(source.package, source.version, cache / "debs", allow_newer)
        root = cache / "root" / source.package
        extract(deb, root)
        path = root / source.path
        found = word_forms(path) if path.suffix == ".dic" else catalogue_words(path)
        words.setdefault(source.lang, []).extend(found)
        entry = table.setdefault(source.lang, {"script": source.script, "sources": []})
        entry["sources"].append(
            {
                "package": source.package,
                "version": version,
                "file": "/" + source.path,
                "licence": source.licence,
                "words": len(found),
            }
        )
        print(
            f"{source.lang}: {len(found):,} words from {source.package} {version} "
            f"({time.monotonic() - started:.1f} s)",
            file=sys.stderr,
        )
    for lang, entry in table.items():
        entry["pairs"] = pair_counts(words[lang], entry["script"])
    return table


def render(table: dict[str, dict[str, Any]]) -> str:
    """The table as committed: one language a line, so a diff shows which one changed."""
    lines = [
        f"  {json.dumps(lang)}: {json.dumps(body, ensure_ascii=False)}"
        for lang, body in table.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    """Build (or check) the table; exit 1 when --check finds it stale, 2 when fetching fails."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download folder")
    parser.add_argument("--out", type=Path, default=TABLE, help="the table to write or check")
    parser.add_argument("--check", action="store_true", help="fail if the table is stale")
    parser.add_argument(
        "--allow-newer", action="store_true", help="take the mirror's version of a package"
    )
    args = parser.parse_args(argv)
    try:
        text = render(build(args.cache, args.allow_newer))
    except FetchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.check:
        if not args.out.exists() or args.out.read_text(encoding="utf-8") != text:
            print(f"{args.out} is stale: run scripts/build_letter_tables.py", file=sys.stderr)
            return 1
        print(f"{args.out} is current", file=sys.stderr)
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({len(text.encode()):,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
