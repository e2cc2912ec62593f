"""Serve a bake traced at 100 % into memory: ``python -m benchmarks.traced_service --package P``.

The tracing-cost scenario's third target. The ``OTEL_*`` variables cannot name an in-memory
exporter, so this builds the provider the bake's ``telemetry.tracing_for`` would (always-on
sampler, a ``BatchSpanProcessor``) around an exporter that counts spans and drops them: every span
is recorded, ended, queued and exported, with no I/O and no memory growth to bias the figure. The
rest is the bake's own ``__main__`` (settings, uvicorn on uvloop and httptools).
"""

from __future__ import annotations

import argparse
import importlib
import signal
from collections.abc import Sequence
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult


class CountingExporter(SpanExporter):
    def __init__(self) -> None:
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--package", required=True)
    package = parser.parse_args().package
    app_module: Any = importlib.import_module(f"{package}.app")
    telemetry: Any = importlib.import_module(f"{package}.telemetry")
    settings = importlib.import_module(f"{package}.settings").load_settings()
    provider = TracerProvider()  # sampler: parent-based always-on, as OTEL_TRACES_SAMPLER unset
    provider.add_span_processor(telemetry.RedactQuery())
    provider.add_span_processor(BatchSpanProcessor(CountingExporter()))
    spans = telemetry.Telemetry(provider, settings.deadline_header)
    app = app_module.create_app(settings, spans=spans)
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
