"""textmend's engine: decode bytes, detect damage, repair it, and say what changed.

The engine is a plain library with no gRPC in it::

    >>> from textmend_server import repair_bytes
    >>> result = repair_bytes("café, naïve".encode("utf-8").decode("latin-1").encode("utf-8"))
    >>> result.text, result.verdict.value
    ('café, naïve', 'repaired')

`textmend_server.service` and `textmend_server.main` put it behind the gRPC contract in
`proto/textmend/v1/textmend.proto`.
"""

from textmend_server.engine import Repaired, repair_bytes, repair_text
from textmend_server.errors import (
    BinaryContentError,
    Cancelled,
    EmptyContentError,
    InputError,
    InvalidMinConfidenceError,
    TooLargeError,
    UnknownEncodingError,
    UnknownPolicyError,
)
from textmend_server.policy import Action, Category, RepairPolicy

__version__ = "0.1.0"

__all__ = [
    "Action",
    "BinaryContentError",
    "Cancelled",
    "Category",
    "EmptyContentError",
    "InputError",
    "InvalidMinConfidenceError",
    "RepairPolicy",
    "Repaired",
    "TooLargeError",
    "UnknownEncodingError",
    "UnknownPolicyError",
    "__version__",
    "repair_bytes",
    "repair_text",
]
