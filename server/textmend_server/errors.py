"""Errors the engine raises for input it cannot treat as text.

Each carries a message a person can act on; the service maps `InputError` to
INVALID_ARGUMENT and `TooLargeError` to RESOURCE_EXHAUSTED. Ordinary outcomes (clean text,
nothing detected) are never errors. `Cancelled` ends work whose caller has gone; stages that
run long ask `check_cancelled`.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

#: Most characters of a caller's input an error message quotes. Messages travel in a status
#: trailer, which gRPC limits to 16 KiB in Python and which a grpc-js client stops reading
#: near 64 KiB (issue 16): a name a person needs to recognise fits in 100 characters.
MAX_QUOTED_CHARS = 100


def shown(value: str, limit: int = MAX_QUOTED_CHARS) -> str:
    """value quoted for an error message: its repr, cut to limit characters and saying so.

    >>> shown("x-klingon")
    "'x-klingon'"
    >>> shown("ab" * 60, 4)
    "'abab' (first 4 of 120 characters)"
    """
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r} (first {limit} of {len(value)} characters)"


class InputError(ValueError):
    """The request cannot be processed as given; the message says what to send instead."""


class EmptyContentError(InputError):
    """The content is empty: there is nothing to repair."""

    def __init__(self) -> None:
        super().__init__("content is empty: send the document's bytes in `content`")


class BinaryContentError(InputError):
    """The content is a binary file (an image, an archive, a PDF, an executable), not text."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(
            f"content looks like a binary file ({kind}), not text: extract the text first "
            "(for example with a PDF or archive tool) and send that"
        )


class UnknownEncodingError(InputError):
    """The declared charset names no character set Python or WHATWG knows; Python codecs that
    are not character sets (utf-7, punycode, base64, ...) count as unknown."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"unknown declared_encoding {shown(name)}: not a character set textmend decodes "
            "(transfer and escape encodings such as utf-7, punycode or base64 are not): use a "
            "charset name such as 'utf-8', 'windows-1252', 'gb18030', 'big5' or 'shift_jis', "
            "or leave it empty to detect"
        )


class UnknownPolicyError(InputError):
    """The policy names a category or an action that does not exist."""


class InvalidMinConfidenceError(InputError):
    """`min_confidence` is not a number between 0 and 1."""

    def __init__(self, value: float) -> None:
        self.value = value
        super().__init__(
            f"min_confidence must be a number from 0 to 1, not {value!r}: 0 keeps each "
            "repair's own floor, 0.9 edits only what is rated at least 0.9 likely to be right"
        )


class TooLargeError(InputError):
    """The content is larger than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            f"content is {size} bytes, over the limit of {limit} bytes: split the document "
            "or raise the server's --max-message-mb"
        )


class Cancelled(Exception):
    """The caller gave up (its deadline passed or it cancelled the call), so the work stopped.

    Not an input error: the same document would be repaired given the time.
    """

    def __init__(self) -> None:
        super().__init__("repair abandoned: the caller cancelled or its deadline passed")


# The running repair's "has the caller gone?" check (None outside a repair): set by the engine
# for the duration of one repair and asked between stages and blocks of text, and by a stage
# whose work runs long within one block (the phase-slip searches) between its searches.
CANCEL_CHECK: ContextVar[Callable[[], bool] | None] = ContextVar("cancel_check", default=None)


def check_cancelled() -> None:
    """Raise `Cancelled` when the running repair's caller has gone; nothing outside a repair
    or when the repair was started without a check."""
    check = CANCEL_CHECK.get()
    if check is not None and check():
        raise Cancelled()
