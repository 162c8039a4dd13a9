"""Which of the parent's pages does a forked worker copy, and whose objects live on them?

Why: a worker forked from the warm parent shares the parent's pages until it writes to one
(issue 16: USS per extra worker is the goal, ≤ 150 MiB). Reading a Python object writes its
reference count, and a new object that lands in a free block of the parent's heap writes
there too, so "shared" models are copied page by page. This measures it directly: the parent
warms the engine up exactly as the server does (collector off, `gc.freeze()`), labels the pages
of the objects reachable from the model tables (before forking, so that labelling touches
nothing in the child), forks a child that repairs a workload, and the child compares its page
frames (`/proc/PID/pagemap`) with the parent's for every private writable mapping: a page whose
frame differs was copied. The label of a page is the first table found on it; "unlabelled"
pages hold no model-table object (the child's own new objects in the parent's free blocks,
memo caches, the heaps of malloc).

Needs root (page frame numbers are hidden from other users) and Linux.

    .venv/bin/python bench/cow_pages.py                 # the default workload
    .venv/bin/python bench/cow_pages.py --documents 400 --top 30
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import struct
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

import adversarial  # noqa: E402
import corruptors  # noqa: E402
from load import memory  # noqa: E402

from textmend_server.engine import repair_bytes, warm_up  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
# Tables smaller than this are not labelled: the models' tables hold thousands to hundreds of
# thousands of entries, and labelling every small dict would label most of the heap.
MIN_TABLE = 1000
# A page frame number is bits 0-54 of a pagemap entry; bit 63 says the page is present.
PFN_MASK = (1 << 55) - 1
PRESENT = 1 << 63


def writable_anonymous(pid: int) -> list[tuple[int, int]]:
    """The process's private writable mappings that are not files: the heaps and arenas."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split()
        lo, hi = (int(x, 16) for x in parts[0].split("-"))
        path = parts[5] if len(parts) > 5 else ""
        if "w" in parts[1] and (path == "" or path == "[heap]"):
            out.append((lo, hi))
    return out


def frames(pid: int, lo: int, hi: int) -> list[int | None]:
    """The page frame of each page in [lo, hi), None where no page is present."""
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // PAGE * 8)
        data = f.read((hi - lo) // PAGE * 8)
    entries = struct.unpack(f"<{len(data) // 8}Q", data)
    return [e & PFN_MASK if e & PRESENT else None for e in entries]


def label_pages() -> dict[int, str]:
    """page number -> the first model table with an object on it (keys and values apart)."""
    from textmend_server import langmodel
    from textmend_server.cjk.lm import get_model

    labels: dict[int, str] = {}

    def mark(table: dict[object, object], name: str) -> None:
        for key, value in table.items():
            labels.setdefault(id(key) // PAGE, f"{name} keys")
            labels.setdefault(id(value) // PAGE, f"{name} values")

    for lang in ("zh", "ja", "ko"):
        model = get_model(lang)
        for owner, prefix in ((model, "CharModel"), (model.words(), "WordModel")):
            for attr, value in vars(owner).items():
                if type(value) is dict and len(value) >= MIN_TABLE:
                    mark(value, f"{prefix}.{attr}")
    for lm in langmodel._MODELS.values():
        mark(lm.pairs, "langmodel pairs")
    return labels


def workload(documents: int, seed: int) -> list[bytes]:
    """Corrupted traditional Chinese, adversarial Han and `?`, random Unicode and clean
    English with accents, in equal parts."""
    from test_cjk import TRADITIONAL

    rng = random.Random(seed)
    out: list[bytes] = []
    for i in range(documents // 4):
        out.append(corruptors.corrupt_document(TRADITIONAL, seed=seed + i).text.encode())
        out.append(adversarial.han_qmark(2000, random.Random(rng.random())).encode())
        out.append(adversarial.random_unicode(2000, random.Random(rng.random())).encode())
        out.append(("Clean English text about cafés and naïve ideas. " * 80).encode())
    return out


def child(parent: int, labels: dict[int, str], docs: list[bytes]) -> dict[str, object]:
    """Repair the workload, then count the pages copied from the parent, by label."""
    started = time.perf_counter()
    for doc in docs:
        repair_bytes(doc)
    seconds = time.perf_counter() - started
    by: dict[str, int] = {}
    copied = 0
    for lo, hi in writable_anonymous(os.getpid()):
        mine, theirs = frames(os.getpid(), lo, hi), frames(parent, lo, hi)
        for i, (a, b) in enumerate(zip(mine, theirs, strict=True)):
            if a is not None and b is not None and a != b:
                copied += 1
                label = labels.get(lo // PAGE + i, "unlabelled")
                by[label] = by.get(label, 0) + 1
    used = memory(os.getpid())
    uss = used.uss if used is not None else float("nan")
    return {"copied": copied, "seconds": seconds, "by": by, "uss_mib": uss}


def main(argv: list[str] | None = None) -> int:
    """Warm up, label, fork, repair, compare; print MiB copied by label."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=200, help="documents repaired (200)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--top", type=int, default=15, help="labels shown (15)")
    args = parser.parse_args(argv)
    gc.disable()
    warm_up()
    labels = label_pages()
    docs = workload(args.documents, args.seed)
    gc.freeze()
    gc.enable()
    parent = os.getpid()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, json.dumps(child(parent, labels, docs)).encode())
        os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.waitpid(pid, 0)
    result = json.loads(data)
    mib = PAGE / 2**20
    print(
        f"{len(docs)} documents in {result['seconds']:.1f} s; the child copied "
        f"{result['copied'] * mib:.1f} MiB of the parent's pages; its USS is "
        f"{result['uss_mib']:.1f} MiB"
    )
    for label, pages in sorted(result["by"].items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{pages * mib:8.1f} MiB  {label}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
