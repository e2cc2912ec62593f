"""The run's report folder: ``timeline.html`` next to locust's HTML/CSV and ``verdict.json``.

The timeline joins what the clients saw (``client_timeline.jsonl``: requests, sheds, errors
and p95 per second) with what the service said about itself (the sampler's
``timeline.jsonl``: pool connections in use, breaker state, CPU), on one time axis with the
phase boundaries marked, and puts the verdict table under it. One HTML file, inline SVG, no
script: it opens anywhere. ``python -m loadtest.report RUN_DIR`` rebuilds it, e.g. for a
distributed run started by hand.
"""

from __future__ import annotations

import json
import string
import sys
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any, Final

from loadtest import client_timeline
from loadtest.chart import Boundary, Panel, Point, Series, render
from loadtest.sampler import read_timeline

COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2")
BREAKER_LEVELS: Final = {"closed": 0, "half_open": 1, "open": 2, "forced_open": 2}
REPORT_FILES: Final = (
    ("locust.html", "locust's HTML report"),
    ("locust_stats.csv", "per request name"),
    ("locust_stats_history.csv", "locust's totals over time"),
    ("locust_failures.csv", "failures by error"),
    ("client_timeline.jsonl", "what the clients saw, second by second"),
    ("timeline.jsonl", "the service sampled once a second"),
    ("verdict.json", "the verdicts and the snapshots they used"),
    ("service.log", "the service's log"),
    ("fault_server.log", "the fault server's log"),
    ("locust.log", "locust's log"),
)


def write_report(run_dir: Path) -> Path:
    """Write ``timeline.html`` from what the run left in ``run_dir``; return its path."""
    verdict = _read_json(run_dir / "verdict.json") or {}
    phases = verdict.get("phases", [])
    starts = [p["started_at"] for p in phases if p.get("started_at")]
    seconds = client_timeline.read(run_dir / "client_timeline.jsonl")
    samples = read_timeline(run_dir / "timeline.jsonl")
    t0 = min(starts) if starts else (seconds[0]["t"] if seconds else 0.0)
    client = client_series(seconds, t0)
    service = service_series(samples, t0)
    boundaries = [
        Boundary(p["started_at"] - t0, p["name"]) for p in phases if p.get("started_at") is not None
    ]
    xs = [x for series in (*client, *service) for x, _ in series.points]
    x_max = max([*xs, *(b.x for b in boundaries), 1.0])
    panels = [
        Panel("Responses per second (clients)", client[:3]),
        Panel("p95 response time of each second, ms (clients)", client[3:]),
        Panel("Pool connections in use (service)", [s for s in service if not s.step]),
        Panel(
            "Circuit breaker (service)",
            [s for s in service if s.step],
            y_labels={0: "closed", 1: "half-open", 2: "open"},
        ),
        Panel("Service CPU, % of one core", [cpu_series(samples, t0)]),
    ]
    path = run_dir / "timeline.html"
    path.write_text(_html(verdict, render(panels, boundaries, x_max), run_dir), encoding="utf-8")
    return path


# -- series -------------------------------------------------------------------------------------


def client_series(seconds: Sequence[Mapping[str, Any]], t0: float) -> list[Series]:
    """requests/s, sheds/s, errors/s and p95 from the master's per-second lines."""

    def series(key: str) -> list[Point]:
        return [(float(line["t"]) - t0, line.get(key)) for line in seconds]

    return [
        Series("requests/s", COLORS[0], series("requests_per_s")),
        Series("sheds/s (503 + Retry-After)", COLORS[2], series("sheds_per_s")),
        Series("errors/s", COLORS[1], series("errors_per_s")),
        Series("p95 ms", COLORS[3], series("p95_ms")),
    ]


def service_series(samples: Sequence[Mapping[str, Any]], t0: float) -> list[Series]:
    """Per downstream: connections in use (active + connecting) and the breaker's state."""
    names = sorted({name for s in samples for name in (s.get("downstreams") or {})})
    series: list[Series] = []
    for index, name in enumerate(names):
        in_use: list[Point] = []
        breaker: list[Point] = []
        for sample in samples:
            x = float(sample["t"]) - t0
            view = (sample.get("downstreams") or {}).get(name)
            pool = view.get("pool") if view else None
            in_use.append((x, float(pool["active"] + pool["connecting"]) if pool else None))
            state = view.get("breaker") if view else None
            breaker.append((x, BREAKER_LEVELS.get(state) if isinstance(state, str) else None))
        color = COLORS[index % len(COLORS)]
        series.append(Series(f"{name} in use", color, in_use))
        series.append(Series(f"{name} breaker", color, breaker, step=True))
    return series


def cpu_series(samples: Sequence[Mapping[str, Any]], t0: float) -> Series:
    """The service's CPU use between consecutive samples."""
    points: list[Point] = []
    previous: tuple[float, float] | None = None
    for sample in samples:
        usage = sample.get("usage") or {}
        t, cpu = float(sample["t"]), usage.get("cpu_s")
        if cpu is None:
            points.append((t - t0, None))
            previous = None
            continue
        if previous is not None and t > previous[0]:
            points.append((t - t0, 100.0 * (cpu - previous[1]) / (t - previous[0])))
        previous = (t, float(cpu))
    return Series("CPU %", COLORS[4], points)


# -- html ---------------------------------------------------------------------------------------


def _html(verdict: Mapping[str, Any], svg: str, run_dir: Path) -> str:
    passed = verdict.get("passed")
    title = f"Load test {verdict.get('profile', '?')}: {'PASS' if passed else 'FAIL'}"
    rows = "\n".join(
        f'<tr class="{"pass" if v["passed"] else "fail"}"><td>{escape(v["phase"])}</td>'
        f"<td>{escape(v['slo'])}</td><td>{escape(v['limit'])}</td>"
        f"<td>{escape(v['measured'])}</td><td>{'pass' if v['passed'] else 'FAIL'}</td></tr>"
        for v in verdict.get("verdicts", [])
    )
    phases = "\n".join(
        f"<tr><td>{escape(p['name'])}</td><td>{escape(p['title'])}</td>"
        f"<td>{p['seconds']:g} s</td><td>{p['users']}</td></tr>"
        for p in verdict.get("phases", [])
    )
    files = "\n".join(
        f'<li><a href="{name}">{name}</a>: {escape(text)}</li>'
        for name, text in REPORT_FILES
        if (run_dir / name).exists()
    )
    return PAGE.substitute(title=escape(title), svg=svg, verdicts=rows, phases=phases, files=files)


# string.Template ($name) rather than an f-string: CSS braces stay single.
PAGE: Final = string.Template(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; }
table { border-collapse: collapse; margin: 12px 0 24px; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 13px; }
tr.pass td:last-child { color: #2a7d2a; }
tr.fail td { background: #fde8e8; }
</style></head>
<body>
<h1>$title</h1>
$svg
<h2>Verdict</h2>
<table><tr><th>phase</th><th>SLO</th><th>limit</th><th>measured</th><th>result</th></tr>
$verdicts
</table>
<h2>Phases</h2>
<table><tr><th>phase</th><th>scenario</th><th>length</th><th>users</th></tr>
$phases
</table>
<h2>Files</h2>
<ul>
$files
</ul>
</body></html>
"""
)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m loadtest.report RUN_DIR")
    print(write_report(Path(sys.argv[1])))
