"""OpenTelemetry against real servers: the span tree of a request, retries, sheds, propagation.

In-process tests read an in-memory exporter; the process tests run ``python -m`` (two workers,
or one with a shed call) exporting OTLP/HTTP, configured by ``OTEL_*`` alone, to the load test's
own receiver (``loadtest/collector.py``).
"""

from __future__ import annotations

import contextlib
import http.client
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

from {{ cookiecutter.package_name }}.app import create_app
from {{ cookiecutter.package_name }}.downstream.config import DownstreamSettings
from {{ cookiecutter.package_name }}.downstream.httplib import httpx
from {{ cookiecutter.package_name }}.downstream.registry import open_downstreams
from {{ cookiecutter.package_name }}.downstreams import declared
from {{ cookiecutter.package_name }}.settings import load_settings
from {{ cookiecutter.package_name }}.telemetry import RedactQuery, Telemetry

from loadtest import collector
from loadtest.collector import TraceCollector, iter_spans
from loadtest.fault_server.harness import RunningFaultServer
from tests.integration.conftest import downstreams_at, hold_one_then_overflow, log_events
from tests.integration.service_process import service_process
from tests.live import serve

pytestmark = pytest.mark.slow
DEADLINE_HEADER = "x-request-deadline-ms"
SERVICE_NAME = "{{ cookiecutter.service_slug }}"  # the default service.name
INBOUND_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_PARENT_ID = "00f067aa0ba902b7"
INBOUND = {"traceparent": f"00-{INBOUND_TRACE_ID}-{INBOUND_PARENT_ID}-01"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@contextmanager
def traced_service(
    fault: RunningFaultServer,
    exporter: InMemorySpanExporter,
    service: dict[str, Any] | None = None,
    **catalog: Any,
) -> Iterator[str]:
    """The service on 127.0.0.1, every downstream on ``fault``, spans into ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(RedactQuery())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    downstreams: dict[str, dict[str, Any]] = {
        name: {"base_url": fault.base_url} for name in declared.names()
    }
    downstreams["catalog"].update(catalog)
    settings = load_settings(**(service or {}), downstreams=downstreams)
    spans = Telemetry(provider, DEADLINE_HEADER, owns_provider=False)
    with serve(create_app(settings, spans=spans)) as base_url:
        yield base_url


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    parent_id = parent.context.span_id
    found = [s for s in spans if s.parent is not None and s.parent.span_id == parent_id]
    return sorted(found, key=lambda s: s.start_time or 0)


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    [span] = [s for s in spans if s.name == name]
    return span


def test_details_is_one_trace_from_the_inbound_request_to_every_attempt(
    fault: RunningFaultServer, exporter: InMemorySpanExporter, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = {"log_format": "json", "log_level": "debug"}
    with traced_service(fault, exporter, logs) as url:
        response = httpx.get(f"{url}/items/7/details?token=s3cr3t", headers=INBOUND)
        assert response.status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200  # probes are not traced
    spans = list(exporter.get_finished_spans())
    [inbound] = [s for s in spans if s.kind is SpanKind.SERVER]
    assert inbound.context is not None
    assert inbound.parent is not None
    assert format_trace_id(inbound.context.trace_id) == INBOUND_TRACE_ID  # accepted inbound
    assert format_span_id(inbound.parent.span_id) == INBOUND_PARENT_ID
    assert inbound.attributes is not None
    assert inbound.attributes["http.route"] == "/items/{item_id}/details"
    assert "s3cr3t" not in str(inbound.attributes.get("url.query"))
    calls = children(spans, inbound)
    assert sorted(s.name for s in calls) == [
        "catalog GET /items/{item_id}",
        "pricing GET /prices/{item_id}",
    ]
    for call in calls:
        assert call.attributes is not None
        assert call.attributes["downstream.outcome"] == "ok"
        assert call.attributes["downstream.breaker.state"] == "closed"
        assert [e.name for e in call.events] == ["bulkhead.admitted"]
        [attempt] = children(spans, call)
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.attributes is not None
        assert attempt.attributes["downstream.attempt"] == 1
        assert attempt.attributes["http.response.status_code"] == 200
        assert 0 < int(str(attempt.attributes["downstream.deadline.remaining_ms"])) <= 10_000
        assert "?" not in str(attempt.attributes["url.full"])
    # The fault server received the attempt span's context, and the log lines carry its trace.
    catalog_attempt = children(spans, only(calls, "catalog GET /items/{item_id}"))[0]
    assert catalog_attempt.context is not None
    expected = f"00-{INBOUND_TRACE_ID}-{format_span_id(catalog_attempt.context.span_id)}-01"
    assert fault.traceparents()["items"] == expected
    events = log_events(capsys.readouterr().out)
    requests = [e for e in events if e["event"] == "downstream.request"]
    assert len(requests) == 2
    assert {e["trace_id"] for e in requests} == {INBOUND_TRACE_ID}
    assert {e["span_id"] for e in requests} == {format_span_id(inbound.context.span_id)}


def test_every_transport_sends_the_attempt_span_as_traceparent(
    any_transport: tuple[RunningFaultServer, dict[str, Any]], exporter: InMemorySpanExporter
) -> None:
    """aiohttp (whose sends bypass ``client.send``), httpcore, and HTTP/2 over TLS alike."""
    fault, transport = any_transport
    with traced_service(fault, exporter, **transport) as url:
        assert httpx.get(f"{url}/items/1", headers=INBOUND).status_code == 200
    spans = list(exporter.get_finished_spans())
    [attempt] = children(spans, only(spans, "catalog GET /items/{item_id}"))
    assert attempt.context is not None
    expected = f"00-{INBOUND_TRACE_ID}-{format_span_id(attempt.context.span_id)}-01"
    assert fault.traceparents()["items"] == expected
    assert attempt.attributes is not None
    version = "2" if transport.get("http2") else "1.1"
    assert attempt.attributes["network.protocol.version"] == version


@pytest.mark.anyio
async def test_no_query_and_no_configured_secret_reaches_a_span(
    fault: RunningFaultServer, exporter: InMemorySpanExporter
) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = Telemetry(provider, DEADLINE_HEADER, owns_provider=False)
    settings = DownstreamSettings.model_validate(
        {"base_url": fault.base_url, "headers": {"Authorization": "Bearer s3cr3t-header"}}
    )
    async with open_downstreams(
        {"catalog": settings}, deadline_header=DEADLINE_HEADER, drain_seconds=1, spans=spans
    ) as downstreams:
        answer = await downstreams["catalog"].get("/items/1", params={"api_key": "s3cr3t"})
        assert answer.status_code == 200
    [attempt] = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert attempt.attributes is not None
    assert attempt.attributes["url.full"] == f"{fault.base_url}/items/1"
    assert "s3cr3t" not in repr(dict(attempt.attributes))


def test_a_retried_call_shows_both_attempts_and_the_back_off(
    fault: RunningFaultServer, exporter: InMemorySpanExporter
) -> None:
    fault.set_fault("items", "error", error_rate=1, status=503)
    with traced_service(fault, exporter, retry={"max_attempts": 2}) as url:
        assert httpx.get(f"{url}/items/1").status_code == 502
    spans = list(exporter.get_finished_spans())
    call = only(spans, "catalog GET /items/{item_id}")
    assert call.attributes is not None
    assert call.attributes["error.type"] == "bad_gateway"
    [retry] = [e for e in call.events if e.name == "retry"]
    assert retry.attributes is not None
    assert retry.attributes["downstream.retry.reason"] == "status_503"
    backoff = retry.attributes["downstream.retry.backoff_s"]
    first, second = children(spans, call)
    assert first.attributes is not None
    assert second.attributes is not None
    assert [first.attributes["downstream.attempt"], second.attributes["downstream.attempt"]] == [
        1,
        2,
    ]
    assert second.attributes["http.request.resend_count"] == 1
    assert second.attributes["downstream.retry.reason"] == "status_503"
    assert second.attributes["downstream.retry.backoff_s"] == backoff
    assert second.start_time is not None
    assert first.end_time is not None
    assert second.start_time >= first.end_time  # the back-off lies between them
    assert fault.stats()["items"] == 2


def test_a_shed_call_says_why(fault: RunningFaultServer, exporter: InMemorySpanExporter) -> None:
    fault.set_fault("items", "slow", latency_ms=800)
    bulkhead = {"max_concurrency": 1, "max_queue": 0, "max_wait": 0}
    with traced_service(fault, exporter, bulkhead=bulkhead) as url:
        assert hold_one_then_overflow(url) == [503, 200]
    calls = [s for s in exporter.get_finished_spans() if s.name.startswith("catalog ")]
    [shed] = [s for s in calls if s.attributes and "downstream.refused" in s.attributes]
    assert shed.attributes is not None
    assert shed.attributes["downstream.refused"] == "bulkhead_queue_full"
    assert shed.attributes["error.type"] == "shed"
    assert shed.status.is_ok is False
    assert children(list(exporter.get_finished_spans()), shed) == []  # no attempt was made


def test_every_worker_exports_its_spans_configured_by_otel_variables(
    fault: RunningFaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collector = TraceCollector(tmp_path / "traces.jsonl").start()
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "process",
    }
    for name, value in otel.items():
        monkeypatch.setenv(name, value)
    settings = {"WORKERS": "2", **downstreams_at(fault.base_url)}
    try:
        with service_process(settings, tmp_path) as service:
            service.wait_until_ready()
            give_up = time.monotonic() + 15
            pids: set[Any] = set()
            while len(pids) < 2 and time.monotonic() < give_up:
                connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
                connection.request("GET", "/items/1")  # a fresh connection: any worker
                assert connection.getresponse().status == 200
                connection.close()
                time.sleep(0.05)
                spans = list(iter_spans(collector.path))
                pids = {s["resource"]["process.pid"] for s in spans if "catalog" in s["name"]}
            service.terminate()
            assert service.wait() == 0
    finally:
        collector.close()
    spans = list(iter_spans(collector.path))
    assert len(pids) == 2, spans[-5:]
    assert {s["resource"]["service.name"] for s in spans} == {SERVICE_NAME}
    names = {s["name"] for s in spans}
    assert {"GET /items/{item_id}", "catalog GET /items/{item_id}", "GET"} <= names


def test_the_load_test_receiver_shows_a_shed_calls_trace_as_a_tree(
    fault: RunningFaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``python -m loadtest --traces`` does, on one shed call: the service exports with the
    variables ``collector.start`` gives it, and the shed call's trace reads back as a tree."""
    fault.set_fault("items", "slow", latency_ms=800)
    with contextlib.ExitStack() as stack:
        for name, value in collector.start(stack, tmp_path).items():
            monkeypatch.setenv(name, value)
        settings = {
            **downstreams_at(fault.base_url),
            "DOWNSTREAMS__CATALOG__BULKHEAD__MAX_CONCURRENCY": "1",
            "DOWNSTREAMS__CATALOG__BULKHEAD__MAX_QUEUE": "0",
            "DOWNSTREAMS__CATALOG__BULKHEAD__MAX_WAIT": "0",
        }
        with service_process(settings, tmp_path) as service:
            service.wait_until_ready()
            assert hold_one_then_overflow(service.base_url) == [503, 200]
            service.terminate()
            assert service.wait() == 0  # shutting down flushes the last spans
    spans = list(iter_spans(tmp_path / collector.TRACES_FILE))
    found = collector.summarize(spans)
    assert found.example is not None, [s["name"] for s in spans]
    assert "calls refused before any attempt: bulkhead_queue_full 1" in found.lines()
    tree = collector.trace_tree(spans, found.example)
    assert tree[0].startswith("GET /items/{item_id} ")  # the inbound span is the root
    assert tree[1].startswith("  catalog GET /items/{item_id} ")  # the call, under it
    assert "downstream.refused=bulkhead_queue_full" in tree[1]
    assert len(tree) == 2  # refused before any attempt: no attempt span


def test_a_wrong_otel_variable_stops_several_workers_once_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each worker builds its own app; the supervisor checks the settings first, so a typo is
    one line and exit status 2, not a traceback from every worker."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "jaeger")
    with service_process({"WORKERS": "2", **downstreams_at("http://127.0.0.1:9")}, tmp_path) as svc:
        assert svc.wait() == 2
        stderr = svc.stderr()
    assert stderr.strip().splitlines() == [
        "configuration error: OTEL_TRACES_EXPORTER='jaeger': use one of otlp, console, none"
    ]
