"""How the client's connections are set up: message limits, load balancing and gRPC's own
retries (`channel_options`), and TLS (`channel_credentials`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc

MIB = 1024 * 1024

#: Default number of connections. The kernel spreads connections over a server's workers by a
#: hash, so more connections than workers are needed for every worker to get one: with 2
#: workers, 4 connections all land on the same one 1 time in 8, 8 connections 1 in 128.
DEFAULT_CHANNELS = 8

# The proto's service, whose `Repair` method the retry policy names.
_SERVICE = "textmend.v1.TextMend"
# Room for the request's other fields next to its content, as the server allows.
_ENVELOPE_BYTES = MIB
# A response (text, diff, edits) can be several times larger than its content.
_RESPONSE_SIZE_FACTOR = 4


def channel_options(max_message_mb: int) -> list[tuple[str, Any]]:
    """Channel arguments: message limits matching the server's, round_robin, retries.

    `Repair` is retried on UNAVAILABLE (a worker that died, a replica going away mid-rollout);
    it is idempotent. A retry is possible only until the response's headers arrive, which the
    server sends with the response, and for requests within the per-call retry buffer, set to
    the largest request.
    Each channel gets its own subchannel pool: otherwise gRPC shares one connection among
    channels with the same target and arguments, and every call would reach one worker.
    """
    send_limit = max_message_mb * MIB + _ENVELOPE_BYTES
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": _SERVICE, "method": "Repair"}],
                # 5 is gRPC's most; the waits (random up to 0.2, 0.4, 0.8, 1.6 s) span a
                # reconnection to another worker or replica.
                "retryPolicy": {
                    "maxAttempts": 5,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ],
    }
    return [
        ("grpc.max_send_message_length", send_limit),
        ("grpc.max_receive_message_length", send_limit * _RESPONSE_SIZE_FACTOR),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.enable_retries", 1),
        # gRPC keeps a call's request for retrying only up to this size (256 KiB by default),
        # and commits larger ones to their first attempt: documents are larger.
        ("grpc.per_rpc_retry_buffer_size", send_limit),
        ("grpc.use_local_subchannel_pool", 1),
    ]


def _pem(source: bytes | str | os.PathLike[str] | None) -> bytes | None:
    """PEM data: bytes as they are, a str or path read from that file."""
    if source is None or isinstance(source, bytes):
        return source
    with open(source, "rb") as handle:
        return handle.read()


def channel_credentials(
    tls_ca: bytes | str | os.PathLike[str] | None = None,
    tls_cert: bytes | str | os.PathLike[str] | None = None,
    tls_key: bytes | str | os.PathLike[str] | None = None,
) -> grpc.ChannelCredentials:
    """TLS credentials: trust tls_ca (PEM bytes or a file; None for the system's roots) and,
    for mutual TLS, present tls_cert with its tls_key."""
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("a client certificate needs its private key: give tls_cert and tls_key")
    return grpc.ssl_channel_credentials(
        root_certificates=_pem(tls_ca),
        private_key=_pem(tls_key),
        certificate_chain=_pem(tls_cert),
    )


# A bearer token is one run of visible ASCII, `!` (0x21) to `~` (0x7E): what an HTTP/2
# header value can carry without quoting, with no space to end it early (RFC 6750's b64token
# is a subset).
_TOKEN_FIRST, _TOKEN_LAST = 0x21, 0x7E


def is_valid_token(token: str) -> bool:
    """Whether token can be sent as `authorization: Bearer <token>`: non-empty printable
    ASCII without spaces, on one line.

    >>> is_valid_token("s3cret"), is_valid_token("two words"), is_valid_token("")
    (True, False, False)
    """
    return bool(token) and all(_TOKEN_FIRST <= ord(ch) <= _TOKEN_LAST for ch in token)
