"""Reading the files a command was given and sending them to the server, in order.

Shared by `check`, `report` and batch repair (`--output-dir`): walking directories, reading
each file, choosing its content type (`textmend_client.content`), sending up to `workers` at
once, and what each outcome means for the exit code.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO

from textmend.v1 import textmend_pb2
from textmend_client.client import TextMendClient
from textmend_client.content import content_type_for
from textmend_client.errors import BINARY_REFUSAL, TextMendError, TooLarge, Unavailable
from textmend_client.retry import CONCURRENCY_REFUSAL
from textmend_client.visible import visible_text

#: Exit codes every command shares: success, a file that could not be read or written, and a
#: server that failed or could not be reached.
EXIT_OK = 0
EXIT_IO = 2
EXIT_SERVER = 3

# Directories that `iter_files` does not descend into: version control and tool caches.
SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "__pycache__",
        "node_modules",
    }
)


class Skipped(OSError):
    """An entry a directory walk meets and does not read: a symbolic link (to a file or a
    directory), a named pipe, a device or a socket. Reading a pipe waits for a writer that may
    never come, a device such as `/dev/zero` never ends, and a link may lead out of the tree."""


def _special(path: str) -> Skipped | None:
    """Why the directory entry at path is not read (`Skipped`), or None for a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return None  # gone, or unreadable: reading it will say why
    if stat.S_ISLNK(mode):
        return Skipped(f"a symbolic link, not followed inside a directory ({os.readlink(path)})")
    if not stat.S_ISREG(mode):
        return Skipped("not a regular file (a named pipe, a device or a socket)")
    return None


def iter_files(
    paths: Iterable[str], exclude: str | os.PathLike[str] | None = None
) -> Iterator[tuple[str, OSError | None]]:
    """Every file under paths, in a stable order, with the error that stopped a directory walk.

    A path that is not a directory is yielded as it is, even when it does not exist (reading
    it will say why), and read as it is (a link or a pipe named on the command line is the
    caller's choice). Directories are walked recursively in sorted order, skipping version
    control and cache directories (`SKIP_DIRS`) and the directory exclude (a batch run's
    output inside its input). What a walk meets that is not a regular file, symbolic links
    included, is yielded with a `Skipped` error: nothing outside the tree is read, and no pipe
    is waited on. A directory that cannot be listed is yielded with its `OSError`.
    """
    excluded = os.path.realpath(exclude) if exclude is not None else None
    for path in paths:
        if not os.path.isdir(path):
            yield path, None
            continue
        errors: list[OSError] = []
        for directory, subdirs, files in os.walk(path, onerror=errors.append):
            while errors:
                error = errors.pop(0)
                yield str(error.filename or directory), error
            walked = []
            for name in sorted(d for d in subdirs if d not in SKIP_DIRS):
                full = os.path.join(directory, name)
                if os.path.islink(full):
                    yield full, _special(full)
                elif excluded is None or os.path.realpath(full) != excluded:
                    walked.append(name)
            subdirs[:] = walked
            for name in sorted(files):
                full = os.path.join(directory, name)
                yield full, _special(full)
        for error in errors:
            yield str(error.filename or path), error


# The longest request id a server takes (`id` over 2048 characters is refused), less room for
# the `…` that marks a path cut from its start.
MAX_ID = 2000


def request_id(path: str) -> str:
    r"""The request id a file is sent under: its path, with bytes that are not UTF-8 (a file
    name in a legacy encoding) written as `\xNN` and a path too long for an id cut to its
    end. Responses are matched by call, not by id: the id is for the server's logs.

    >>> request_id("docs/a.txt"), request_id("caf\udce9.txt")
    ('docs/a.txt', 'caf\\xe9.txt')
    >>> len(request_id("d/" * 3000)) <= MAX_ID + 1
    True
    """
    shown = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return shown if len(shown) <= MAX_ID else "…" + shown[-MAX_ID:]


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: a response, or why there is none.

    `status` is `ok` (with `response`), `empty` (an empty file: nothing to repair, not sent),
    `skipped` (a link or special file a walk met: `error` is the `Skipped`), `io` (`error` is
    the `OSError` that stopped reading it), `refused` (the server would not take it for being
    a binary file: `error` says why), `too_large` (larger than a request may carry, or
    over another of the server's limits on one document, such as a line's length) or `failed`
    (any other server error, in `error`).
    """

    path: str
    status: str
    content: bytes = b""
    response: textmend_pb2.RepairResponse | None = None
    error: Exception | None = None


def _repair_one(
    client: TextMendClient,
    path: str,
    walk_error: OSError | None,
    policy: Mapping[str, str] | None,
    content_type: str,
    min_confidence: float,
) -> FileOutcome:
    if isinstance(walk_error, Skipped):
        return FileOutcome(path, "skipped", error=walk_error)
    if walk_error is not None:
        return FileOutcome(path, "io", error=walk_error)
    limit = client.max_message_bytes
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            # Read no more than a request can carry: a huge file is refused unread.
            content = handle.read(limit + 1) if size <= limit else b""
    except OSError as exc:
        return FileOutcome(path, "io", error=exc)
    if size > limit or len(content) > limit:
        mb = limit >> 20
        too_large = ValueError(
            f"larger than the {mb} MB one request may carry (--max-message-mb, max_message_mb)"
        )
        return FileOutcome(path, "too_large", error=too_large)
    if not content:
        return FileOutcome(path, "empty")
    try:
        response = client.repair(
            content,
            id=request_id(path),
            content_type=content_type_for(path, content_type),
            policy=dict(policy or {}),
            omit_diff=True,
            min_confidence=min_confidence,
        )
    except TooLarge as exc:
        # Over a limit of the server's on what one document may be (its size, a line's
        # length): the file's own doing, as binary content is; trying again will not help.
        status = "failed" if CONCURRENCY_REFUSAL in exc.details else "too_large"
        return FileOutcome(path, status, content, error=exc)
    except TextMendError as exc:
        binary = exc.code.name == "INVALID_ARGUMENT" and BINARY_REFUSAL in exc.details
        return FileOutcome(path, "refused" if binary else "failed", content, error=exc)
    return FileOutcome(path, "ok", content, response)


def repair_files(
    paths: Iterable[str],
    client: TextMendClient,
    *,
    policy: Mapping[str, str] | None = None,
    content_type: str = "",
    workers: int = 4,
    min_confidence: float = 0.0,
) -> Iterator[FileOutcome]:
    """Repair every file under paths (see `iter_files`), yielding outcomes in path order.

    Up to `workers` files are read and repaired at once (the client spreads them over its
    connections). `policy`, `min_confidence` and `content_type` apply to every file; an
    empty `content_type` means the client's rule (`textmend_client.content`): text/html for
    markup file names, else the server sniffs.
    When the server cannot be reached (`Unavailable`) that outcome is the last: the files
    after it are not tried. Closing the iterator early cancels the work not yet started.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    files = iter_files(paths)
    # Not `with`: its exit waits for the calls in flight, up to their deadline, where a caller
    # stopping early (Ctrl-C) wants to close the client at once, which cancels them.
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="textmend-file")
    try:
        pending: list[Future[FileOutcome]] = []
        try:
            for path, walk_error in files:
                pending.append(
                    pool.submit(
                        _repair_one, client, path, walk_error, policy, content_type, min_confidence
                    )
                )
                if len(pending) < 2 * workers:
                    continue
                outcome = pending.pop(0).result()
                yield outcome
                if isinstance(outcome.error, Unavailable):
                    return
            while pending:
                outcome = pending.pop(0).result()
                yield outcome
                if isinstance(outcome.error, Unavailable):
                    return
        finally:
            for future in pending:
                future.cancel()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def warn(stream: IO[str], message: str) -> None:
    """Write `textmend: message` on its own line to stream (standard error), at once."""
    stream.write(f"textmend: {message}\n")
    stream.flush()


def report_outcome(outcome: FileOutcome, err: IO[str]) -> int:
    """Warn on err about an outcome that has no response; the exit code it calls for.

    0 for `ok`, `empty`, `skipped`, `refused` and `too_large` (a binary file, or one past a
    limit on one document, is skipped with a warning), `EXIT_IO` for `io`, `EXIT_SERVER` for
    `failed`.
    """
    if outcome.status == "io":
        error = outcome.error
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        warn(err, f"{visible_text(outcome.path)}: cannot read: {reason}")
        return EXIT_IO
    if outcome.status in ("refused", "too_large", "skipped"):
        details = getattr(outcome.error, "details", str(outcome.error))
        warn(err, f"{visible_text(outcome.path)}: skipped: {details}")
    elif outcome.status == "failed":
        warn(err, f"{visible_text(outcome.path)}: {outcome.error}")
        return EXIT_SERVER
    return EXIT_OK
