"""Client library and `textmend` command for the textmend repair service.

Needs only gRPC and the generated stubs (`textmend.v1`), not the engine::

    from textmend_client import TextMendClient

    with TextMendClient("localhost:50051") as client:
        response = client.repair(raw_bytes, declared_encoding="iso-8859-1")
        print(response.text, response.encoding.name, len(response.edits))
"""

from importlib.metadata import PackageNotFoundError, version

from textmend_client.client import TextMendClient
from textmend_client.errors import (
    DeadlineExceeded,
    InvalidInput,
    InvalidRequest,
    ServerBrokeContract,
    TextMendError,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from textmend_client.request import as_request, make_request

try:
    __version__ = version("textmend")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "DeadlineExceeded",
    "InvalidInput",
    "InvalidRequest",
    "ServerBrokeContract",
    "TextMendClient",
    "TextMendError",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "__version__",
    "as_request",
    "make_request",
]
