"""The `textmend-server` command line: its flags, their environment twins, and the settings a
worker is started with.

Every flag but `--port-file` has an environment variable twin, its name upper-cased after
`TEXTMEND_` (`--max-calls` / `TEXTMEND_MAX_CALLS`); flags win. The flags are one table
(`FLAGS`), from which the parser and each flag's help line (twin and default) are made, and the
server's limits take their defaults from `ServerConfig`, so a default is stated once.

The TLS and token files are read here, once, in the parent (`read_security`), so a worker
restarted later needs no access to them, and the token never appears in `ps` or in the
environment.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textmend_server import __version__
from textmend_server.config import KEEPALIVE_TIMEOUT_SECONDS, ServerConfig, is_token

#: The port gRPC's own examples and documentation use; the image, Compose and Kubernetes files
#: expose it too.
DEFAULT_PORT = 50051
#: Every interface, IPv6 and (on a dual-stack host) IPv4: a server in a container is reached
#: from outside it.
DEFAULT_HOST = "[::]"
#: Start-up, workers coming and going, refusals and errors; DEBUG adds a line per document.
DEFAULT_LOG_LEVEL = "INFO"
#: The `--metrics-port` that turns the metrics off: they are served only when asked for.
METRICS_OFF = 0
#: Prefix of every flag's environment twin.
ENV_PREFIX = "TEXTMEND_"


# --- validators ----------------------------------------------------------------------------


def _whole(text: str) -> int:
    """text as a whole number, or a usage error that says so (argparse would name the
    validator: `invalid _positive_int value: 'abc'`)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None


def _number(text: str) -> float:
    """text as a number, or a usage error that says so."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None


def _positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    value = _whole(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, not {value}")
    return value


def _seconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _log_level(text: str) -> str:
    name = text.upper()
    if name not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}")
    return name


# --- the flags -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One flag with an environment twin: what it takes and what its help says.

    default is the value when neither the flag nor its twin is given (None: unset); shown is
    how the help states it when the value itself would not say enough.
    """

    name: str
    help: str
    type: Callable[[str], Any] | None = None
    default: object = None
    shown: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None

    @property
    def env(self) -> str:
        """The environment twin: `--max-calls` -> `TEXTMEND_MAX_CALLS`."""
        return ENV_PREFIX + self.name.removeprefix("--").upper().replace("-", "_")

    def spelled_default(self) -> str | None:
        """The default as its twin would spell it (what the parser then converts)."""
        if self.default is None:
            return None
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)

    def help_line(self) -> str:
        """The help text with the twin and the default: `... (TEXTMEND_PORT; default: 50051)`."""
        shown = self.shown or self.spelled_default()
        return (
            f"{self.help} ({self.env}; default: {shown})" if shown else f"{self.help} ({self.env})"
        )


def _limit(name: str) -> object:
    """`ServerConfig`'s default for a field: where each limit's value is explained."""
    return {f.name: f.default for f in dataclasses.fields(ServerConfig)}[name]


#: Every flag with a twin, in the order `--help` lists them.
FLAGS: tuple[Flag, ...] = (
    Flag("--host", "address to listen on", default=DEFAULT_HOST, shown="[::], every interface"),
    Flag("--port", "port to listen on, 0 to pick a free one", _port, DEFAULT_PORT),
    Flag("--workers", "worker processes", _positive_int, os.cpu_count() or 1, "the number of CPUs"),
    Flag(
        "--threads",
        "most health checks and other short calls per worker at once, and as many threads "
        "again for refusals, on top of one per call the limits below admit; no call ever "
        "waits for a thread",
        _positive_int,
        _limit("threads"),
    ),
    Flag(
        "--max-calls",
        "most Repair calls one worker runs at once; the next gets UNAVAILABLE at once, and the "
        "textmend client retries it after a backoff",
        _positive_int,
        _limit("max_calls"),
    ),
    Flag(
        "--max-streams",
        "most open RepairStream calls per worker; the next gets UNAVAILABLE at once",
        _positive_int,
        _limit("max_streams"),
    ),
    Flag(
        "--max-admin-streams",
        "most open health Watch and reflection streams per worker; the next gets UNAVAILABLE; "
        "health Check counts against --threads",
        _positive_int,
        _limit("max_admin_streams"),
    ),
    Flag(
        "--stream-idle-seconds",
        "a stream that sends nothing for this long while none of its documents is being "
        "repaired is ended with UNAVAILABLE; everything it sent was answered",
        _positive_seconds,
        _limit("stream_idle_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--max-message-mb",
        "largest document accepted, in MiB; larger ones get RESOURCE_EXHAUSTED",
        _positive_int,
        _limit("max_message_mb"),
    ),
    Flag(
        "--max-inflight-mb",
        "most MiB of documents one worker repairs at once (at least --max-message-mb); a "
        "Repair past it gets UNAVAILABLE at once, a stream's next document waits",
        _positive_int,
        _limit("max_inflight_mb"),
    ),
    Flag(
        "--log-level",
        "DEBUG logs one line per document, without its text",
        _log_level,
        DEFAULT_LOG_LEVEL,
    ),
    Flag(
        "--grace",
        "on SIGTERM, how long calls in flight may take to finish",
        _seconds,
        _limit("grace"),
        metavar="SECONDS",
    ),
    Flag(
        "--metrics-port",
        "serve Prometheus metrics (summed over workers) at http://HOST:PORT/metrics; 0 turns "
        "them off",
        _port,
        METRICS_OFF,
    ),
    Flag(
        "--log-format",
        "json writes one JSON object per line, for log collectors",
        default="text",
        choices=("text", "json"),
    ),
    Flag(
        "--max-line-kb",
        "longest line accepted, in KiB of content between line breaks; longer gets "
        "RESOURCE_EXHAUSTED. The engine checks a caller's deadline between lines, so this bounds "
        "work that cannot be stopped",
        _positive_int,
        _limit("max_line_kb"),
    ),
    Flag(
        "--max-edits",
        "most edits plus findings for one document; a document needing more gets "
        "RESOURCE_EXHAUSTED, never a shortened list",
        _positive_int,
        _limit("max_edits"),
    ),
    Flag(
        "--max-seconds",
        "most time one document may take, whatever the caller's deadline; work beyond it is "
        "abandoned with RESOURCE_EXHAUSTED, so no input can hold a worker for long",
        _positive_seconds,
        _limit("max_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--max-stream-documents",
        "most documents one RepairStream carries; the next one ends the stream with "
        "RESOURCE_EXHAUSTED, and the textmend client resends what was not answered on a new "
        "stream",
        _positive_int,
        _limit("max_stream_documents"),
    ),
    Flag(
        "--connection-age-seconds",
        "a connection this old is asked to go (HTTP/2 GOAWAY), so that long-lived callers "
        "spread over the workers again; its client opens another; 0 never",
        _seconds,
        _limit("connection_age_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--connection-age-grace-seconds",
        "how long calls open on a connection asked to go may still take before it is closed "
        "under them (UNAVAILABLE; the textmend client resends what was not answered)",
        _seconds,
        _limit("connection_age_grace_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--connection-idle-seconds",
        "a connection with no call open for this long is closed; the caller's next call "
        "opens another; 0 never",
        _seconds,
        _limit("connection_idle_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--keepalive-seconds",
        "a connection with calls open and silent this long is pinged, and closed if the ping "
        f"is not answered within {KEEPALIVE_TIMEOUT_SECONDS:g} s (a peer that vanished); 0 "
        "never",
        _seconds,
        _limit("keepalive_seconds"),
        metavar="SECONDS",
    ),
    Flag(
        "--cache-mb",
        "MiB of memoised engine results each worker keeps (all of the engine's memos "
        "together); 0 keeps none, which makes heavy CJK documents slower, never different",
        _non_negative_int,
        _limit("cache_mb"),
        metavar="MIB",
    ),
)

#: The flags naming files the parent reads before it forks (`read_security`), after
#: `--log-content` in `--help`.
FILE_FLAGS: tuple[Flag, ...] = (
    Flag(
        "--tls-cert",
        "PEM certificate chain; with --tls-key, serve TLS only",
        Path,
        shown="plaintext",
        metavar="PATH",
    ),
    Flag("--tls-key", "PEM private key of --tls-cert", Path, metavar="PATH"),
    Flag(
        "--tls-client-ca",
        "PEM CA bundle: require every client to present a certificate it signed (mutual TLS); "
        "health probes then need a client certificate too",
        Path,
        metavar="PATH",
    ),
    Flag(
        "--auth-token-file",
        "file holding a token; every textmend.v1.TextMend call must then carry "
        "'authorization: Bearer <token>' or gets UNAUTHENTICATED. Health checks and reflection "
        "stay open, so probes need no token. Use it with TLS: over plaintext the token can be "
        "read on the wire",
        Path,
        metavar="PATH",
    ),
)


def _add(parser: argparse.ArgumentParser, flag: Flag) -> None:
    """Add flag to parser, its default taken from its environment twin when that is set."""
    parser.add_argument(
        flag.name,
        type=flag.type,
        default=os.environ.get(flag.env, flag.spelled_default()),
        metavar=flag.metavar,
        choices=flag.choices,
        help=flag.help_line(),
    )


def build_parser() -> argparse.ArgumentParser:
    """The `textmend-server` argument parser; defaults come from the environment."""
    parser = argparse.ArgumentParser(
        prog="textmend-server",
        description="Serve textmend (repair corrupted text) over gRPC, with health checking "
        "and reflection.",
        epilog="Each option can also be set by the environment variable shown; options win.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    for flag in FLAGS:
        _add(parser, flag)
    parser.add_argument(
        "--log-content",
        action="store_true",
        default=os.environ.get("TEXTMEND_LOG_CONTENT", "").lower() in {"1", "true", "yes"},
        help="with --log-level DEBUG, also log the first 200 bytes of each document; off by "
        "default, as documents may be private (TEXTMEND_LOG_CONTENT=1)",
    )
    for flag in FILE_FLAGS:
        _add(parser, flag)
    parser.add_argument(
        "--port-file",
        type=Path,
        metavar="PATH",
        help="write the bound port to PATH once every worker is serving",
    )
    return parser


# --- what a worker starts with ---------------------------------------------------------------


@dataclass(frozen=True)
class Security:
    """The contents of the TLS and token files, read once by the parent."""

    tls_cert: bytes | None = None
    tls_key: bytes | None = None
    tls_client_ca: bytes | None = None
    auth_token: str | None = None


@dataclass(frozen=True)
class Settings:
    """What a worker needs to start its server (picklable; forked, in practice)."""

    address: str
    config: ServerConfig


def read_security(args: argparse.Namespace) -> Security:
    """Read the files the TLS and token options name; ValueError says what is wrong."""
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together: give both to serve TLS")
    if args.tls_client_ca is not None and args.tls_cert is None:
        raise ValueError("--tls-client-ca needs --tls-cert and --tls-key (mutual TLS is TLS)")

    def read(path: Path | None, option: str) -> bytes | None:
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{option} {path}: {exc.strerror or exc}") from None
        if not data.strip():
            raise ValueError(f"{option} {path}: the file is empty")
        return data

    token = read(args.auth_token_file, "--auth-token-file")
    auth_token = None
    if token is not None:
        try:
            auth_token = token.decode("ascii").strip()
        except UnicodeDecodeError:
            raise ValueError("--auth-token-file: the token must be printable ASCII") from None
        if not is_token(auth_token):
            raise ValueError(
                "--auth-token-file: the token must be one line of at most 4096 printable ASCII "
                "characters without spaces"
            )
    return Security(
        tls_cert=read(args.tls_cert, "--tls-cert"),
        tls_key=read(args.tls_key, "--tls-key"),
        tls_client_ca=read(args.tls_client_ca, "--tls-client-ca"),
        auth_token=auth_token,
    )


def settings(args: argparse.Namespace, address: str, reuse_port: bool) -> Settings:
    """The settings of a worker serving on address: every `ServerConfig` field a flag sets,
    as parsed, and the contents of the files `read_security` read (`args.security`)."""
    from_files = dataclasses.asdict(args.security or Security())
    from_flags = {
        name: value
        for name, value in vars(args).items()
        if name in _CONFIG_FIELDS and name not in from_files
    }
    return Settings(address, ServerConfig(**from_flags, **from_files, reuse_port=reuse_port))


_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(ServerConfig))


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_PORT",
    "FILE_FLAGS",
    "FLAGS",
    "METRICS_OFF",
    "Flag",
    "Security",
    "Settings",
    "build_parser",
    "read_security",
    "settings",
]
