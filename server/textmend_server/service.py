"""The gRPC service: `textmend.v1.TextMend` in front of the engine, plus health and reflection.

The engine knows nothing about gRPC; the service around it is built from parts, one job each:

* `convert`: engine objects <-> protobuf messages (small pure functions, tested without a
  server);
* `limits`: one request through the engine within the server's limits (`LimitError`);
* `turns`: which admitted documents of a worker run the engine now;
* `servicer`: the `TextMend` methods, their errors, logs and metrics;
* `admission` and `interceptors`: how many calls of each kind a worker runs, the idle limit on
  streams, the version header and the bearer token;
* this module: the server itself (TLS, reflection, health) from a `ServerConfig`.

Documents per stream are limited too (`max_stream_documents`: the stream then ends with
RESOURCE_EXHAUSTED and the `textmend-stream-limit` trailer, and a caller resends what was not
answered on a new one).

Security, off by default: TLS or mutual TLS (`tls_cert`, `tls_key`, `tls_client_ca`) and a
bearer token that every `textmend.v1.TextMend` call must carry (`auth_token`, checked in
constant time by `AuthInterceptor`); health checks and reflection stay open so probes work.

The names the parts define that callers use (the client's in-process backfill, the tests, the
benches) are importable from here too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from textmend_server import engine
from textmend_server.admission import Admission, IdleLimitedRequests, call_kind
from textmend_server.config import KEEPALIVE_TIMEOUT_SECONDS, ServerConfig
from textmend_server.convert import (
    MAX_ID_CHARS,
    SERVICE_NAME,
    error_response,
    policy_from_request,
    to_edit,
    to_encoding_info,
    to_response,
    to_response_full,
    to_timings,
)
from textmend_server.interceptors import (
    BUSY_METADATA,
    STARTING_METADATA,
    STREAM_IDLE_METADATA,
    AdmissionInterceptor,
    AuthInterceptor,
    VersionInterceptor,
)
from textmend_server.limits import (
    MAX_LABEL_CHARS,
    LimitError,
    check_limits,
    check_request,
    check_result,
    find_long_line,
    repair_request,
)
from textmend_server.servicer import (
    STREAM_LIMIT_METADATA,
    RepairFailed,
    TextMendServicer,
    add_servicer,
    classify_error,
    shown_id,
)
from textmend_server.turns import Turn, Turns

_LOGGER = logging.getLogger(__name__)


# --- reflection --------------------------------------------------------------------------------

#: The current reflection service, which grpcurl 1.9+ and Postman ask first; `v1alpha` is the
#: one grpcio-reflection implements. Their messages are the same, field for field.
REFLECTION_V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_REFLECTION_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_reflection_v1_descriptor(pool: descriptor_pool.DescriptorPool) -> None:
    """Add `grpc/reflection/v1/reflection.proto` to pool (once), built from v1alpha's file by
    renaming its package, so reflection can describe the v1 service it serves."""
    try:
        pool.FindFileByName(_REFLECTION_V1_FILE)
        return
    except KeyError:
        pass
    old, new = ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
    proto = descriptor_pb2.FileDescriptorProto.FromString(reflection_pb2.DESCRIPTOR.serialized_pb)
    proto.name = _REFLECTION_V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(old, new)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(old, new)
            method.output_type = method.output_type.replace(old, new)
    pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serve server reflection as `grpc.reflection.v1` and `grpc.reflection.v1alpha`, both
    listing service_names and themselves."""
    names = (*service_names, REFLECTION_V1_SERVICE, reflection.SERVICE_NAME)
    _register_reflection_v1_descriptor(descriptor_pool.Default())
    servicer = reflection.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    v1 = grpc.method_handlers_generic_handler(
        REFLECTION_V1_SERVICE,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((v1,))


# --- the server ------------------------------------------------------------------------------


def server_options(config: ServerConfig) -> list[tuple[str, int]]:
    """gRPC channel arguments for a server built from config."""
    return [
        ("grpc.max_receive_message_length", config.max_receive_bytes),
        ("grpc.max_send_message_length", config.max_send_bytes),
        ("grpc.so_reuseport", 1 if config.reuse_port else 0),
        # Streams one connection may hold open at once: no more than the worker would run
        # (`pool_threads`). Unset, gRPC allows any number, and its protection against a
        # client that opens streams and resets them at once (HTTP/2 "rapid reset") never
        # engages: 120,000 such streams in 9 s on 6 connections had 56 of 260 other callers'
        # `Repair` calls cancelled by gRPC; with the limit, none of 1,503.
        ("grpc.max_concurrent_streams", config.pool_threads),
        *connection_options(config),
    ]


# gRPC's value for a connection time that never comes (INT_MAX milliseconds).
_NEVER_MS = 2**31 - 1


def connection_options(config: ServerConfig) -> list[tuple[str, int]]:
    """The channel arguments that bound a connection's life: its age, the grace of the calls
    open when it is asked to go, how long it may sit with no call, and the keepalive pings
    that find a peer gone (an age, idle time or keepalive of 0 in config: never; a grace of
    0: the connection is closed as soon as it is asked to go)."""

    def ms(seconds: float) -> int:
        return round(seconds * 1000) if seconds > 0 else _NEVER_MS

    options = [
        ("grpc.max_connection_age_ms", ms(config.connection_age_seconds)),
        ("grpc.max_connection_age_grace_ms", round(config.connection_age_grace_seconds * 1000)),
        ("grpc.max_connection_idle_ms", ms(config.connection_idle_seconds)),
    ]
    if config.keepalive_seconds > 0:
        options += [
            ("grpc.keepalive_time_ms", ms(config.keepalive_seconds)),
            ("grpc.keepalive_timeout_ms", ms(KEEPALIVE_TIMEOUT_SECONDS)),
        ]
    return options


def server_credentials(config: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS credentials for config, requiring client certificates when it names a client CA;
    None for plaintext."""
    if config.tls_cert is None or config.tls_key is None:
        return None
    return grpc.ssl_server_credentials(
        [(config.tls_key, config.tls_cert)],
        root_certificates=config.tls_client_ca,
        require_client_auth=config.tls_client_ca is not None,
    )


def warm_up() -> None:
    """Load the engine's tables and models so that the first real request does not wait."""
    started = time.perf_counter()
    engine.warm_up()
    _LOGGER.debug("engine warmed up in %.0f ms", (time.perf_counter() - started) * 1000)


def create_server(
    address: str,
    config: ServerConfig,
    health_servicer: health.HealthServicer | None = None,
) -> tuple[grpc.Server, int]:
    """Build, bind and start a server on address; return it and the port it bound.

    Health reports NOT_SERVING until the engine has warmed up, then SERVING, for both the
    overall server ("") and `textmend.v1.TextMend`; until then `TextMend` calls are refused
    with UNAVAILABLE and the `textmend-starting` trailer, which the client retries. In a worker
    forked from a parent that warmed the engine (`textmend_server.main`), the warm-up here only
    confirms it (milliseconds). Pass health_servicer to drive it later
    (`enter_graceful_shutdown()` before `server.stop(grace)`). Bind "127.0.0.1:0" in tests.
    """
    # Outermost first: every answer carries the version; a call without its token is refused
    # before it counts against a limit.
    interceptors: list[grpc.ServerInterceptor] = [VersionInterceptor()]
    if config.auth_token is not None:
        interceptors.append(AuthInterceptor(config.auth_token))
    admission = AdmissionInterceptor(config)
    interceptors.append(admission)
    # One thread per call the limits admit plus --threads for the rest, and gRPC refuses a
    # call beyond that rather than queue it: nothing ever waits for a thread, so idle or slow
    # streams cannot delay a health check or another caller's Repair (issue 16).
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.pool_threads, thread_name_prefix="textmend"),
        options=server_options(config),
        interceptors=interceptors,
        maximum_concurrent_rpcs=config.pool_threads,
    )
    add_servicer(TextMendServicer(config), server)
    health_servicer = health_servicer or health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(server, (SERVICE_NAME, health.SERVICE_NAME))
    try:
        credentials = server_credentials(config)
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:
        port = 0
    if port == 0:
        raise OSError(f"cannot bind {address}: the address is in use or not available here")
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    server.start()
    if config.warm_up:
        warm_up()
    admission.ready()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port


__all__ = [
    "BUSY_METADATA",
    "MAX_ID_CHARS",
    "MAX_LABEL_CHARS",
    "REFLECTION_V1_SERVICE",
    "SERVICE_NAME",
    "STARTING_METADATA",
    "STREAM_IDLE_METADATA",
    "STREAM_LIMIT_METADATA",
    "Admission",
    "IdleLimitedRequests",
    "LimitError",
    "RepairFailed",
    "ServerConfig",
    "TextMendServicer",
    "Turn",
    "Turns",
    "call_kind",
    "check_limits",
    "check_request",
    "check_result",
    "classify_error",
    "create_server",
    "enable_reflection",
    "error_response",
    "find_long_line",
    "health",
    "policy_from_request",
    "repair_request",
    "server_credentials",
    "server_options",
    "shown_id",
    "to_edit",
    "to_encoding_info",
    "to_response",
    "to_response_full",
    "to_timings",
    "warm_up",
]
