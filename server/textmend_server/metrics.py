"""Prometheus metrics for the service: requests, latency, bytes, edits, encodings, verdicts.

Worker processes each count what they serve; the parent process exposes the sum on
`--metrics-port` through prometheus_client's multiprocess mode, which keeps each process's
values in files under a directory. `configure(directory)` must run in the parent before any
worker is forked and before prometheus_client creates a metric, which is why the metrics are
built lazily by `_metrics()` and not at import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Latency buckets in seconds: from a clean paragraph (about a millisecond) to a large document.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class _Metrics:
    requests: Any
    latency: Any
    content_bytes: Any
    edits: Any
    findings: Any
    encodings: Any
    verdicts: Any


def enabled() -> bool:
    """Whether metrics are being collected in this process (the parent configured them)."""
    return bool(os.environ.get(_ENV))


def configure(directory: str) -> None:
    """Collect metrics from every process into directory (emptied first). Call in the parent,
    before forking workers."""
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))
    os.environ[_ENV] = directory


_BUILT: list[_Metrics] = []
# `functools.cache` lets two threads build the metrics at once, and the second registration of
# a name fails (`Duplicated timeseries in CollectorRegistry`): the first documents a worker
# served with metrics on failed with UNKNOWN. Built once, under this lock.
_BUILDING = threading.Lock()


def _metrics() -> _Metrics:
    if _BUILT:
        return _BUILT[0]
    with _BUILDING:
        if not _BUILT:
            _BUILT.append(_build())
    return _BUILT[0]


def _build() -> _Metrics:
    from prometheus_client import Counter, Histogram

    return _Metrics(
        requests=Counter(
            "textmend_requests", "Documents handled, by method and status code", ["method", "code"]
        ),
        latency=Histogram(
            "textmend_request_seconds", "Time to repair one document", ["method"], buckets=_BUCKETS
        ),
        content_bytes=Counter("textmend_content_bytes", "Bytes of content received"),
        edits=Counter("textmend_edits", "Edits made, by category", ["category"]),
        findings=Counter("textmend_findings", "Findings reported, by category", ["category"]),
        encodings=Counter(
            "textmend_encodings",
            "Documents decoded, by encoding and source",
            ["encoding", "source"],
        ),
        verdicts=Counter("textmend_verdicts", "Documents by verdict", ["verdict"]),
    )


def observe(
    method: str,
    code: str,
    seconds: float,
    content_bytes: int,
    *,
    edits: Iterable[str] = (),
    findings: Iterable[str] = (),
    encoding: str = "",
    source: str = "",
    verdict: str = "",
) -> None:
    """Count one document: its status code, time, size, and what was found in it."""
    if not enabled():
        return
    m = _metrics()
    m.requests.labels(method, code).inc()
    m.latency.labels(method).observe(seconds)
    m.content_bytes.inc(content_bytes)
    for category in edits:
        m.edits.labels(category).inc()
    for category in findings:
        m.findings.labels(category).inc()
    if encoding:
        m.encodings.labels(encoding, source).inc()
    if verdict:
        m.verdicts.labels(verdict).inc()


def process_exited(pid: int) -> None:
    """Forget a worker's live gauges after it exits (counters and histograms are kept)."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def serve(port: int, host: str = "") -> None:
    """Serve the sum over all processes at http://host:port/metrics (in a daemon thread)."""
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host or "0.0.0.0", registry=registry)
