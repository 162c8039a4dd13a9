"""Pinned Debian packages, fetched and unpacked without installing them: what the scripts that
build corpora from Debian share (`fetch_real_corpus.py`, `fetch_cjk_text.py`).

A package is downloaded with `apt-get download NAME=VERSION` into a cache folder and unpacked
with `dpkg -x`, once each; a re-run reuses both. A version the mirror no longer offers is an
error unless the caller allows the newer one. Errors are raised as `FetchError`, whose message
says what to do; each script prints it its own way.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path


class FetchError(Exception):
    """A package could not be fetched or unpacked; the message says why and what to try."""


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command, capturing its output as text."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)


def candidate(name: str) -> str | None:
    """The version apt would install now, or None when apt knows no such package."""
    result = run(["apt-cache", "policy", name], Path("/"))
    match = re.search(r"Candidate:\s*(\S+)", result.stdout)
    return match.group(1) if match and match.group(1) != "(none)" else None


def deb_version(deb: Path) -> str:
    """The version a .deb file holds."""
    return run(["dpkg-deb", "-f", str(deb), "Version"], Path("/")).stdout.strip()


def download(name: str, version: str, debs: Path, allow_newer: bool) -> tuple[Path, str]:
    """The cached .deb of name=version (downloaded first if needed) and its version, which
    is the mirror's newer one when allow_newer lets it be."""
    for deb in sorted(debs.glob(f"{name}_*.deb")):
        cached = deb_version(deb)
        if cached == version or allow_newer:
            return deb, cached
    if shutil.which("apt-get") is None:
        raise FetchError("apt-get is not on PATH: this script needs a Debian system with apt")
    if candidate(name) is None:
        update = run(["apt-get", "update"], debs)
        if update.returncode != 0:
            raise FetchError(
                f"apt-get update failed; is the Debian mirror reachable?\n{update.stderr.strip()}"
            )
    now = candidate(name)
    if now is None:
        raise FetchError(
            f"apt knows no package {name!r}; check /etc/apt/sources.list* (Debian bookworm, main)"
        )
    if now != version:
        if not allow_newer:
            raise FetchError(
                f"{name}={version} is pinned but the mirror offers {now}; update the pin, "
                "or re-run with --allow-newer to take it"
            )
        version = now
    result = run(["apt-get", "download", f"{name}={version}"], debs)
    if result.returncode != 0:
        raise FetchError(
            f"could not download {name}={version} from the Debian mirror "
            f"(apt-get exited {result.returncode}); is the mirror reachable?\n"
            + result.stderr.strip()
        )
    for deb in sorted(debs.glob(f"{name}_*.deb")):
        if deb_version(deb) == version:
            return deb, version
    raise FetchError(f"apt-get download {name}={version} left no .deb in {debs}")


def extract(deb: Path, root: Path) -> None:
    """`dpkg -x` a package into root, once (a `.done` marker records a finished extraction)."""
    marker = root / ".done"
    if marker.exists():
        return
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    result = run(["dpkg", "-x", str(deb), str(root)], root)
    if result.returncode != 0:
        raise FetchError(f"dpkg -x {deb.name} failed:\n{result.stderr.strip()}")
    marker.touch()
