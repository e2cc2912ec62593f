"""An OTLP/HTTP trace receiver on 127.0.0.1, so a load test's traces can be read afterwards.

``python -m loadtest --traces`` starts it and points the service's ``OTEL_EXPORTER_OTLP_ENDPOINT``
at it; every span lands as one JSON line in the run's ``traces.jsonl``, and the run ends by naming
the trace of one shed or refused call. Then, with no collector, Jaeger or network:

    python -m loadtest.collector loadtest/reports/<run>/traces.jsonl            # what is there
    python -m loadtest.collector loadtest/reports/<run>/traces.jsonl <trace_id> # one trace's tree

Why a receiver of our own: the load test must stop by itself, stay on loopback and install
nothing the service does not already have; a Collector binary or a Jaeger container is none of
that. The protobuf classes are OpenTelemetry's own (``opentelemetry-proto``, which the service's
OTLP exporter depends on); this module only listens, writes and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import http.server
import json
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

TRACES_FILE: Final = "traces.jsonl"
#: Span attributes that say a call was refused before any attempt (the service's call span).
REFUSED: Final = "downstream.refused"
#: The attributes a tree line shows: why a call ended as it did, and which attempt was which.
SHOWN: Final = (
    REFUSED,
    "downstream.outcome",
    "error.type",
    "http.response.status_code",
    "downstream.attempt",
    "downstream.retry.reason",
    "downstream.retry.backoff_s",
)


class TraceCollector(http.server.ThreadingHTTPServer):
    """Receives ``POST /v1/traces`` and appends each span to ``path`` as one JSON line."""

    daemon_threads = True

    def __init__(self, path: Path) -> None:
        super().__init__(("127.0.0.1", 0), _ExportHandler)
        self.path = path
        self.spans_written = 0
        self._lock = threading.Lock()
        self._out: IO[str] = path.open("a", encoding="utf-8")
        self._thread = threading.Thread(target=self.serve_forever, name="otlp", daemon=True)

    @property
    def url(self) -> str:
        """What ``OTEL_EXPORTER_OTLP_ENDPOINT`` should be (the exporter adds ``/v1/traces``)."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> TraceCollector:
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop listening (after the service has flushed its last batch) and close the file."""
        self.shutdown()
        self.server_close()
        with self._lock:
            self._out.close()

    def write(self, export: ExportTraceServiceRequest) -> None:
        lines = [json.dumps(record) + "\n" for record in span_records(export)]
        with self._lock:
            self._out.writelines(lines)
            self._out.flush()
            self.spans_written += len(lines)


class _ExportHandler(http.server.BaseHTTPRequestHandler):
    server: TraceCollector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":  # OTEL_EXPORTER_OTLP_COMPRESSION
            body = gzip.decompress(body)
        if self.path.rstrip("/") != "/v1/traces":
            self.send_error(404, "only /v1/traces is received here")
            return
        self.server.write(ExportTraceServiceRequest.FromString(body))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per export batch would bury the load test's own output


def start(stack: contextlib.ExitStack, run_dir: Path) -> dict[str, str]:
    """A receiver for this run, closed by ``stack``; returns the service's ``OTEL_*`` variables:
    the standard ones only, as a team would set them (every span, each batch within 0.5 s)."""
    collector = TraceCollector(run_dir / TRACES_FILE).start()
    stack.callback(collector.close)
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "500",
    }


def print_report(run_dir: Path) -> None:
    """What the run's traces hold, and the command that shows one refused call's trace."""
    path = run_dir / TRACES_FILE
    found = summarize(iter_spans(path)) if path.exists() else Summary()
    print(f"\ntraces: {path}")
    print("\n".join(f"  {line}" for line in found.lines()))
    if found.example is not None:
        print(f"  see it: python -m loadtest.collector {path} {found.example}")


def span_records(export: ExportTraceServiceRequest) -> Iterator[dict[str, Any]]:
    """One plain dict per span: ids in hex, times in ns, attributes as JSON values."""
    for resource_spans in export.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "status": {0: "unset", 1: "ok", 2: "error"}.get(span.status.code, "unset"),
                    "attributes": attributes_of(span.attributes),
                    "events": [event.name for event in span.events],
                    "resource": resource,
                }


def attributes_of(pairs: Sequence[KeyValue]) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def iter_spans(path: Path) -> Iterator[dict[str, Any]]:
    """A ``traces.jsonl``'s spans one at a time: a long run's file need not fit in memory."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@dataclass
class Summary:
    """What a run's traces hold, counted in one pass."""

    spans: int = 0
    trace_ids: set[str] = field(default_factory=set)
    refused: Counter[str] = field(default_factory=Counter)
    shed_example: str | None = None  # a call the bulkhead shed: what a pool-exhaustion run is about
    refused_example: str | None = None  # else one refused otherwise (breaker, retry budget)

    @property
    def example(self) -> str | None:
        return self.shed_example or self.refused_example

    def lines(self) -> list[str]:
        lines = [f"{self.spans} spans in {len(self.trace_ids)} traces"]
        if self.refused:
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.refused.items()))
            lines.append(f"calls refused before any attempt: {counts}")
        if self.example is not None:
            lines.append(f"one shed (or refused) call's trace: {self.example}")
        return lines


def summarize(spans: Iterable[dict[str, Any]]) -> Summary:
    found = Summary()
    for span in spans:
        found.spans += 1
        found.trace_ids.add(span["trace_id"])
        reason = span["attributes"].get(REFUSED)
        if reason is None:
            continue
        found.refused[reason] += 1
        found.refused_example = found.refused_example or span["trace_id"]
        if str(reason).startswith("bulkhead"):
            found.shed_example = found.shed_example or span["trace_id"]
    return found


def trace_tree(spans: Iterable[dict[str, Any]], trace_id: str) -> list[str]:
    """One trace as an indented tree: name, duration, status and the attributes that tell why."""
    mine = sorted((s for s in spans if s["trace_id"] == trace_id), key=lambda s: s["start_ns"])
    ids = {s["span_id"] for s in mine}
    children: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for span in mine:
        parent = span["parent_span_id"]
        children[parent if parent in ids else ""].append(span)  # a remote parent: a root here
    lines: list[str] = []

    def walk(parent: str, depth: int) -> None:
        for span in children[parent]:
            duration_ms = (span["end_ns"] - span["start_ns"]) / 1e6
            attributes = span["attributes"]
            told = " ".join(f"{k}={attributes[k]}" for k in SHOWN if k in attributes)
            status = "" if span["status"] == "unset" else f" [{span['status']}]"
            line = f"{'  ' * depth}{span['name']}  {duration_ms:.1f} ms{status}  {told}"
            lines.append(line.rstrip())
            walk(span["span_id"], depth + 1)

    walk("", 0)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.collector", description=__doc__)
    parser.add_argument("traces", type=Path, help=f"a run's {TRACES_FILE}")
    parser.add_argument("trace_id", nargs="?", help="print this trace as a tree")
    args = parser.parse_args(argv)
    spans = iter_spans(args.traces)
    lines = trace_tree(spans, args.trace_id) if args.trace_id else summarize(spans).lines()
    if not lines:
        print(f"no span of trace {args.trace_id} in {args.traces}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
