"""A small, typed client for the textmend gRPC service.

    >>> with TextMendClient("localhost:50051") as client:     # doctest: +SKIP
    ...     response = client.repair("cafÃ© â€” itâ€™s")
    ...     response.text
    'café — it’s'

Every call carries a deadline (`timeout`, in seconds). RPC failures surface as `TextMendError`
subclasses with the status code and the server's message, never as bare `grpc.RpcError`. The
client uses only gRPC and the generated stubs; it does not need the engine installed.

Load balancing: gRPC keeps one long-lived HTTP/2 connection, so behind a plain TCP balancer
every call of a client lands on the same replica. Give a `dns:///host:port` target whose name
resolves to every replica (a headless Kubernetes Service, a compose service name) and the
client spreads calls over all of them (`round_robin`, set in the channel's service config).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from textmend.v1 import textmend_pb2, textmend_pb2_grpc

MIB = 1024 * 1024

#: Default deadline of one `repair` or `health` call, in seconds.
DEFAULT_TIMEOUT = 30.0
#: Default deadline of a whole `repair_stream` call, in seconds.
DEFAULT_STREAM_TIMEOUT = 3600.0

_SERVICE = "textmend.v1.TextMend"
# Room for the request's other fields next to its content, as the server allows.
_ENVELOPE_BYTES = MIB
# A response (text, diff, edits) can be several times larger than its content.
_RESPONSE_SIZE_FACTOR = 4

_ACTIONS: Mapping[str, textmend_pb2.Policy.ValueType] = {
    "fix": textmend_pb2.POLICY_FIX,
    "flag": textmend_pb2.POLICY_FLAG,
    "off": textmend_pb2.POLICY_OFF,
}


# --- errors ----------------------------------------------------------------------------------


class TextMendError(Exception):
    """A call failed; `code` is the gRPC status code and `details` the server's message.

    `str(error)` reads `INVALID_ARGUMENT: content is empty: ...`.
    """

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code = code
        self.details = details
        super().__init__(f"{code.name}: {details}")


class InvalidInput(TextMendError):
    """INVALID_ARGUMENT: empty or binary content, an unknown charset or policy name."""


class TooLarge(TextMendError):
    """RESOURCE_EXHAUSTED: the document is larger than the server (or this client) accepts."""


class Unavailable(TextMendError):
    """UNAVAILABLE: no server could be reached, or it is shutting down; safe to retry."""


class DeadlineExceeded(TextMendError):
    """DEADLINE_EXCEEDED: the call took longer than its timeout."""


_ERRORS: Mapping[grpc.StatusCode, type[TextMendError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidInput,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLarge,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}


def error_from_rpc(error: grpc.RpcError, target: str = "") -> TextMendError:
    """Translate a `grpc.RpcError` into the matching `TextMendError` subclass."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if code is grpc.StatusCode.UNAVAILABLE and target:
        details = f"cannot reach the textmend server at {target}: {details}"
    return _ERRORS.get(code, TextMendError)(code, details)


# --- requests --------------------------------------------------------------------------------


def policy_map(policy: Mapping[str, str] | None) -> dict[str, textmend_pb2.Policy.ValueType]:
    """Turn `{"mojibake": "flag"}` into the request's `policy` map of `Policy` values.

    Category names are checked by the server; actions must be fix, flag or off.

    >>> policy_map({"mojibake": "FLAG"}) == {"mojibake": textmend_pb2.POLICY_FLAG}
    True
    """
    result: dict[str, textmend_pb2.Policy.ValueType] = {}
    for name, action in (policy or {}).items():
        try:
            result[name] = _ACTIONS[str(action).lower()]
        except KeyError:
            raise ValueError(
                f"unknown action {action!r} for {name!r} in policy; use fix, flag or off"
            ) from None
    return result


def _content_bytes(content: bytes | bytearray | memoryview | str) -> bytes:
    """Bytes are sent as they are; text is sent as UTF-8."""
    if isinstance(content, str):
        return content.encode("utf-8")
    if isinstance(content, bytes | bytearray | memoryview):
        return bytes(content)
    raise TypeError(
        f"content must be bytes (the document as fetched) or str, not {type(content).__name__}"
    )


def make_request(
    content: bytes | str,
    *,
    id: str = "",
    declared_encoding: str = "",
    content_type: str = "",
    policy: Mapping[str, str] | None = None,
    omit_diff: bool = False,
) -> textmend_pb2.RepairRequest:
    """Build a `RepairRequest`; str content is sent as UTF-8."""
    return textmend_pb2.RepairRequest(
        id=id,
        content=_content_bytes(content),
        declared_encoding=declared_encoding,
        content_type=content_type,
        policy=policy_map(policy),
        omit_diff=omit_diff,
    )


def as_request(item: textmend_pb2.RepairRequest | Mapping[str, Any]) -> textmend_pb2.RepairRequest:
    """Accept a `RepairRequest`, or a mapping as in JSON Lines input.

    The mapping holds `id` and one of `text` (str), `content` (bytes or str) or `content_b64`,
    plus optional `declared_encoding`, `content_type`, `policy` and `omit_diff`.

    >>> as_request({"id": 7, "content_b64": "aGk="}).content
    b'hi'
    """
    if isinstance(item, textmend_pb2.RepairRequest):
        return item
    if not isinstance(item, Mapping):
        raise TypeError(f"expected a RepairRequest or a mapping, not {type(item).__name__}")
    sources = [key for key in ("text", "content", "content_b64") if key in item]
    if len(sources) != 1:
        raise ValueError('give exactly one of "text", "content" or "content_b64"')
    if sources == ["content_b64"]:
        try:
            content: bytes | str = base64.b64decode(item["content_b64"], validate=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f'"content_b64" is not valid base64: {exc}') from None
    else:
        content = item[sources[0]]
        if sources == ["text"] and not isinstance(content, str):
            raise ValueError('"text" must be a string')
    return make_request(
        content,
        id=str(item.get("id", "")),
        declared_encoding=str(item.get("declared_encoding") or ""),
        content_type=str(item.get("content_type") or ""),
        policy=item.get("policy"),
        omit_diff=bool(item.get("omit_diff", False)),
    )


# --- the client ------------------------------------------------------------------------------


def channel_options(max_message_mb: int) -> list[tuple[str, Any]]:
    """Channel arguments: message limits matching the server's, round_robin, retries.

    `Repair` is retried on UNAVAILABLE (a replica going away mid-rollout); it is idempotent.
    """
    send_limit = max_message_mb * MIB + _ENVELOPE_BYTES
    service_config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [
            {
                "name": [{"service": _SERVICE, "method": "Repair"}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.1s",
                    "maxBackoff": "1s",
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
    ]


class TextMendClient:
    """A connection to a textmend server (or, with a `dns:///` target, to all its replicas).

    Use it as a context manager, or call `close()`. `timeout` is the deadline of each unary
    call in seconds; `max_message_mb` should match the server's `--max-message-mb`.
    """

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_message_mb: int = 64,
        stream_timeout: float = DEFAULT_STREAM_TIMEOUT,
    ) -> None:
        if timeout <= 0 or stream_timeout <= 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        self.target = target
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self._channel = grpc.insecure_channel(target, options=channel_options(max_message_mb))
        self._stub = textmend_pb2_grpc.TextMendStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    def __enter__(self) -> TextMendClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in progress are cancelled."""
        self._channel.close()

    def repair(
        self,
        content: bytes | str,
        *,
        id: str = "",
        declared_encoding: str = "",
        content_type: str = "",
        policy: dict[str, str] | None = None,
        omit_diff: bool = False,
        timeout: float | None = None,
    ) -> textmend_pb2.RepairResponse:
        """Repair one document: bytes as fetched (or str, sent as UTF-8).

        Raises `InvalidInput`, `TooLarge`, `Unavailable`, `DeadlineExceeded` or
        `TextMendError`.
        """
        request = make_request(
            content,
            id=id,
            declared_encoding=declared_encoding,
            content_type=content_type,
            policy=policy,
            omit_diff=omit_diff,
        )
        try:
            return self._stub.Repair(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err

    def repair_stream(
        self,
        requests: Iterable[textmend_pb2.RepairRequest | Mapping[str, Any]],
        *,
        timeout: float | None = None,
    ) -> Iterator[textmend_pb2.RepairResponse]:
        """Repair many documents over one stream; yields one response per request.

        Responses may come in a different order from the requests: match them by `id`. A
        document that fails has `response.error` set; the stream goes on. The deadline
        (`timeout`, default `stream_timeout`) covers the whole stream. Stopping iteration
        early cancels the call.
        """
        call = self._stub.RepairStream(
            (as_request(item) for item in requests), timeout=timeout or self.stream_timeout
        )
        try:
            yield from call
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err
        finally:
            call.cancel()

    def health_status(self, service: str = "", *, timeout: float | None = None) -> str:
        """The `grpc.health.v1` status name of service ("" = the whole server).

        Returns `SERVING`, `NOT_SERVING`, ...; raises `TextMendError` when the check itself
        fails (`Unavailable` when no server answers).
        """
        try:
            reply = self._health.Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout or self.timeout
            )
        except grpc.RpcError as err:
            raise error_from_rpc(err, self.target) from err
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def health(self, service: str = "", *, timeout: float | None = None) -> bool:
        """Whether the server reports SERVING; False when it does not or cannot be reached."""
        try:
            return self.health_status(service, timeout=timeout) == "SERVING"
        except TextMendError:
            return False
