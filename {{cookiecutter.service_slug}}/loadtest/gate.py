"""The SLO gate: plain data in, one verdict per SLO out. No locust import, so it is unit-tested.

The locustfile hands over its stats rows (one per request name, see ``naming``) and the
snapshots it took at each phase boundary and after the run. Every check refuses to pass on
missing data: an SLO over requests that never happened, or over a view the service does not
expose, fails and says so, instead of passing on zeros.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from loadtest.naming import HEALTHZ, ParsedName, parse_name
from loadtest.profiles import Limits, Phase, Profile, Slo

#: Call outcomes (``/debug/downstreams``) that never reached the downstream.
NOT_SENT: Final = frozenset({"shed", "breaker_open"})
AFTER: Final = "after"


@dataclass(frozen=True)
class RequestRow:
    """One locust stats entry: its name, counts and response-time histogram (ms -> count)."""

    name: str
    count: int
    failures: int
    response_times: Mapping[int, int]


@dataclass(frozen=True)
class Snapshot:
    """What the service and the fault server said at one instant (any part may be missing)."""

    t: float
    fault: Mapping[str, int] | None = None  # GET /__admin/stats
    downstreams: Mapping[str, Any] | None = None  # /debug/downstreams, summarised
    usage: Mapping[str, float] | None = None  # {"rss_mib": ..., "open_fds": ...}
    log_lines: int | None = None  # lines the service has logged so far


@dataclass
class Window:
    start: Snapshot | None = None
    end: Snapshot | None = None


@dataclass(frozen=True)
class Verdict:
    phase: str
    slo: str
    limit: str
    measured: str
    passed: bool


@dataclass
class RunData:
    rows: list[RequestRow]
    windows: dict[str, Window] = field(default_factory=dict)
    final: Snapshot | None = None  # after the drain wait
    completed: bool = False  # every phase ran to its end


@dataclass(frozen=True)
class PhaseRows:
    """The rows of one phase, with their parsed names."""

    rows: list[tuple[ParsedName, RequestRow]]

    def of(self, endpoint: str) -> PhaseRows:
        return PhaseRows([(p, row) for p, row in self.rows if p.endpoint == endpoint])

    def select(self, keep: Callable[[ParsedName], bool]) -> list[RequestRow]:
        return [row for parsed, row in self.rows if keep(parsed)]

    @property
    def all(self) -> list[RequestRow]:
        return [row for _, row in self.rows]


# -- numbers ------------------------------------------------------------------------------------


def total(rows: Iterable[RequestRow]) -> int:
    return sum(row.count for row in rows)


def percentile_ms(rows: Iterable[RequestRow], quantile: float) -> float | None:
    """The response time below which ``quantile`` of the responses fell; None when empty."""
    merged: dict[int, int] = {}
    for row in rows:
        for ms, count in row.response_times.items():
            merged[ms] = merged.get(ms, 0) + count
    return histogram_percentile(merged, quantile)


def histogram_percentile(histogram: Mapping[int, int], quantile: float) -> float | None:
    """The same from one histogram (response time in ms -> count); None when empty."""
    count_all = sum(histogram.values())
    if count_all <= 0:
        return None
    rank = math.ceil(quantile * count_all)
    seen = 0
    for ms in sorted(histogram):
        seen += histogram[ms]
        if seen >= rank:
            return float(ms)
    return float(max(histogram))


def _seconds(value_s: float) -> str:
    return f"{value_s * 1000:.0f} ms" if value_s < 10 else f"{value_s:.1f} s"


def _no_data(phase: str, slo: Slo, limit: str, what: str) -> Verdict:
    return Verdict(phase, slo.text, limit, f"no data: {what}", passed=False)


# -- phase checks -------------------------------------------------------------------------------

Check = Callable[[str, Slo, PhaseRows, Window, Profile], Verdict]


def check_error_ratio_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    limit = f"< {slo.limit:.2%}"
    count = total(rows.all)
    if count == 0:
        return _no_data(phase, slo, limit, "no requests")
    errors = total(rows.select(lambda p: p.outcome != ""))
    ratio = errors / count
    return Verdict(phase, slo.text, limit, f"{ratio:.2%} ({errors}/{count})", ratio < slo.limit)


def check_no_bare_500(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    count = total(rows.all)
    if count == 0:
        return _no_data(phase, slo, "0", "no requests")
    bare = total(rows.select(lambda p: p.is_bare_error))
    return Verdict(phase, slo.text, "0", f"{bare} of {count}", bare == 0)


def _p99_check(
    phase: str, slo: Slo, selected: list[RequestRow], what: str, *, quantile: float = 0.99
) -> Verdict:
    limit = f"<= {_seconds(slo.limit)}"
    p99 = percentile_ms(selected, quantile)
    if p99 is None:
        return _no_data(phase, slo, limit, f"no {what}")
    measured = f"{p99:.0f} ms (n={total(selected)})"
    limit_ms = round(slo.limit * 1000, 3)  # 0.7 + 0.1 s is 799.999... ms in floats
    return Verdict(phase, slo.text, limit, measured, p99 <= limit_ms)


def check_shed_p99_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _p99_check(phase, slo, rows.select(lambda p: p.is_shed), "shed responses")


def check_healthz_p99_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _p99_check(phase, slo, rows.select(lambda p: p.endpoint == HEALTHZ), "/healthz calls")


def check_timeout_p99_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _p99_check(phase, slo, rows.select(lambda p: p.status == 504), "504 responses")


def check_breaker_open_p99_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    selected = rows.select(lambda p: p.shed_reason == "breaker_open")
    return _p99_check(phase, slo, selected, "breaker_open responses")


def check_all_p99_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _p99_check(phase, slo, rows.all, "requests")


def _present(phase: str, slo: Slo, selected: list[RequestRow], what: str) -> Verdict:
    count = total(selected)
    return Verdict(phase, slo.text, "> 0", f"{count} {what}", count > 0)


def check_breaker_opens(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    selected = rows.select(lambda p: p.shed_reason in ("breaker_open", "breaker_opening"))
    return _present(phase, slo, selected, "breaker_open")


def check_sheds_present(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _present(phase, slo, rows.select(lambda p: p.is_shed), "shed")


def check_aborted_present(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _present(phase, slo, rows.select(lambda p: p.outcome == "aborted"), "aborted")


def check_bad_bodies_named(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    return _present(phase, slo, rows.select(lambda p: p.outcome == "502 bad_body"), "bad_body")


def check_bad_gateways_named(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    """The service's own bad_gateway count rose: its callers' calls and its health probes both
    count, so the fault is seen even while an open breaker keeps callers away from it (that
    no caller got a 500 is ``no_bare_500``'s to judge)."""
    start, end = window.start, window.end
    if start is None or end is None or not start.downstreams or not end.downstreams:
        return _no_data(phase, slo, "> 0", "the service's /debug/downstreams")
    counted = sum(
        (view.get("outcomes") or {}).get("bad_gateway", 0)
        - (start.downstreams.get(name, {}).get("outcomes") or {}).get("bad_gateway", 0)
        for name, view in end.downstreams.items()
    )
    return Verdict(phase, slo.text, "> 0", f"{counted} bad_gateway", counted > 0)


def check_breaker_ready(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    """At the end of a quiet phase no breaker is open; at its start one was, or the phase
    proved nothing. Read from /debug/downstreams, before the next phase's first call."""
    limit = "none open at the end, after one was"
    start, end = window.start, window.end
    if start is None or end is None or not start.downstreams or not end.downstreams:
        return _no_data(phase, slo, limit, "the service's /debug/downstreams")
    before = {name: view.get("breaker") for name, view in start.downstreams.items()}
    after = {name: view.get("breaker") for name, view in end.downstreams.items()}
    recovering = any(state != "closed" for state in before.values())
    ready = all(state in ("closed", "half_open") for state in after.values())
    measured = "; ".join(f"{name}: {before.get(name)} -> {after[name]}" for name in sorted(after))
    return Verdict(phase, slo.text, limit, measured, recovering and ready)


def check_degrades(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    degraded = total(rows.select(lambda p: p.outcome == "degraded"))
    failed = total(rows.select(lambda p: p.outcome.endswith(" failed")))
    measured = f"{degraded} degraded, {failed} failed on an optional downstream"
    ok = degraded > 0 and failed == 0
    return Verdict(phase, slo.text, "> 0 degraded, 0 failed", measured, ok)


def check_success_ratio_min(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    limit = f">= {slo.limit:.1%}"
    count = total(rows.all)
    if count == 0:
        return _no_data(phase, slo, limit, "no requests")
    ok = total(rows.select(lambda p: p.outcome == ""))
    ratio = ok / count
    return Verdict(phase, slo.text, limit, f"{ratio:.2%} ({ok}/{count})", ratio >= slo.limit)


@dataclass(frozen=True)
class Traffic:
    """Downstream requests during a window: received by the fault server, sent by the service."""

    received: int
    sent: int
    downstreams: int  # downstreams that sent anything


def traffic(window: Window, routes: Iterable[tuple[str, str]]) -> Traffic | None:
    """Per (fault route, downstream) pair: what the route received, what the downstream sent."""
    start, end = window.start, window.end
    if start is None or end is None or start.fault is None or end.fault is None:
        return None
    if not start.downstreams or not end.downstreams:
        return None
    received, sent, active = 0, 0, 0
    for route, downstream in routes:
        if downstream not in end.downstreams:
            return None
        received += end.fault.get(route, 0) - start.fault.get(route, 0)
        sent_now = _sent(end.downstreams[downstream]) - _sent(start.downstreams.get(downstream, {}))
        sent += sent_now
        active += sent_now > 0
    return Traffic(received, sent, active)


def _sent(view: Mapping[str, Any]) -> int:
    """Calls that reached the wire: every outcome but a shed or an open breaker."""
    outcomes = view.get("outcomes") or {}
    return sum(count for outcome, count in outcomes.items() if outcome not in NOT_SENT)


_NO_TRAFFIC: Final = "fault-server stats or the service's /debug/downstreams"


def check_log_rate_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    """The service's log lines a second during the phase, per downstream: whatever fails, a
    person gets a few lines a second to read, not one a call."""
    start, end = window.start, window.end
    limit = f"<= {slo.limit:g}"
    if start is None or end is None or start.log_lines is None or end.log_lines is None:
        return _no_data(phase, slo, limit, "the service's log")
    downstreams = max(1, len(end.downstreams or {}))
    lines = end.log_lines - start.log_lines
    rate = lines / max(end.t - start.t, 1e-9) / downstreams
    measured = f"{rate:.1f} ({lines} lines, {downstreams} downstreams)"
    return Verdict(phase, slo.text, limit, measured, rate <= slo.limit)


def check_amplification_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    seen = traffic(window, slo.routes)
    if seen is None or seen.sent <= 0:
        return _no_data(phase, slo, "-", _NO_TRAFFIC if seen is None else "no call sent")
    # The budget's floor is a fixed number of retries per downstream, not a ratio.
    limit = slo.limit + slo.floor_retries * seen.downstreams / seen.sent
    ratio = seen.received / seen.sent
    measured = f"{ratio:.3f} ({seen.received}/{seen.sent})"
    return Verdict(phase, slo.text, f"<= {limit:.3f}", measured, ratio <= limit)


def check_retries_max(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    """Retries seen downstream (received - sent): at most ``limit`` per downstream that sent
    anything, plus ``per_sent`` of each call sent, plus one request straddling a snapshot
    (received, not yet counted as sent)."""
    seen = traffic(window, slo.routes)
    if seen is None or seen.sent <= 0:
        return _no_data(phase, slo, "-", _NO_TRAFFIC if seen is None else "no call sent")
    limit = 1 + slo.limit * seen.downstreams + slo.per_sent * seen.sent
    retries = seen.received - seen.sent
    measured = f"{retries} ({seen.received} received, {seen.sent} sent)"
    return Verdict(phase, slo.text, f"<= {limit:.1f}", measured, retries <= limit)


def check_limit_near_capacity(
    phase: str, slo: Slo, rows: PhaseRows, window: Window, profile: Profile
) -> Verdict:
    """The bulkhead's width (the adaptive limit's) at the phase's end, against the capacity
    (``slo.limit``) of the downstream named in ``slo.routes``."""
    band = profile.limits.adaptive_band
    low, high = slo.limit / band, slo.limit * band
    limit = f"{low:g}..{high:g}"
    ((_, downstream),) = slo.routes
    view = (window.end.downstreams or {}).get(downstream) if window.end else None
    width = (view or {}).get("bulkhead", {}).get("limit")
    if not isinstance(width, int | float):
        return _no_data(phase, slo, limit, "the bulkhead's limit in /debug/downstreams")
    measured = f"{width} (capacity {slo.limit:g})"
    return Verdict(phase, slo.text, limit, measured, low <= width <= high)


CHECKS: Final[dict[str, Check]] = {
    "error_ratio_max": check_error_ratio_max,
    "no_bare_500": check_no_bare_500,
    "shed_p99_max": check_shed_p99_max,
    "healthz_p99_max": check_healthz_p99_max,
    "log_rate_max": check_log_rate_max,
    "bad_bodies_named": check_bad_bodies_named,
    "bad_gateways_named": check_bad_gateways_named,
    "breaker_ready": check_breaker_ready,
    "degrades": check_degrades,
    "timeout_p99_max": check_timeout_p99_max,
    "breaker_opens": check_breaker_opens,
    "breaker_open_p99_max": check_breaker_open_p99_max,
    "amplification_max": check_amplification_max,
    "all_p99_max": check_all_p99_max,
    "retries_max": check_retries_max,
    "sheds_present": check_sheds_present,
    "success_ratio_min": check_success_ratio_min,
    "aborted_present": check_aborted_present,
    # p99 of each route of the phase's mix on its own (see PER_ROUTE).
    "route_p99_max": check_all_p99_max,
    "limit_near_capacity": check_limit_near_capacity,
}


# -- after the run ------------------------------------------------------------------------------


def after_run_checks(data: RunData, profile: Profile) -> list[Verdict]:
    if not data.completed:
        return [Verdict(AFTER, "every phase ran to its end", "all", "interrupted", passed=False)]
    final = data.final
    views = None if final is None else final.downstreams
    verdicts = [
        _downstream_check(views, "zero in flight, zero queued", _drained),
        _downstream_check(views, "no orphan connection, no request in the pool", _pool_empty),
        _downstream_check(views, "no leaked response, no open stream", _no_leaks),
    ]
    # The baseline is the end of the first phase: warm, with its users still connected.
    baseline = data.windows.get(profile.phases[0].name, Window()).end
    before = None if baseline is None else baseline.usage
    after = None if final is None else final.usage
    limits = profile.limits
    verdicts.append(_growth("RSS growth since baseline (MiB)", "rss_mib", before, after, limits))
    verdicts.append(_growth("open fds growth since baseline", "open_fds", before, after, limits))
    return verdicts


def _downstream_check(
    views: Mapping[str, Any] | None,
    text: str,
    measure: Callable[[Mapping[str, Any]], tuple[str, bool]],
) -> Verdict:
    if not views:
        return Verdict(AFTER, text, "0", "no data: /debug/downstreams", passed=False)
    parts, passed = [], True
    for name, view in sorted(views.items()):
        shown, ok = measure(view)
        parts.append(f"{name} {shown}")
        passed = passed and ok
    return Verdict(AFTER, text, "0", ", ".join(parts), passed)


def _drained(view: Mapping[str, Any]) -> tuple[str, bool]:
    in_flight, queued = view.get("in_flight"), view.get("queued")
    return f"{in_flight}/{queued}", in_flight == 0 and queued == 0


def _pool_empty(view: Mapping[str, Any]) -> tuple[str, bool]:
    pool = view.get("pool", {})
    keys = ("connecting", "active", "requests_active", "requests_queued")
    values = [pool.get(key) for key in keys]
    repaired = view.get("orphans_repaired", 0)
    shown = "/".join(str(v) for v in values)
    if repaired:
        shown += f" ({repaired} repaired on the way)"
    return shown, all(v == 0 for v in values)


def _no_leaks(view: Mapping[str, Any]) -> tuple[str, bool]:
    leaked, streams = view.get("leaked_responses"), view.get("open_streams")
    return f"{leaked}/{streams}", leaked == 0 and streams == 0


def _growth(
    text: str,
    key: str,
    before: Mapping[str, float] | None,
    after: Mapping[str, float] | None,
    limits: Limits,
) -> Verdict:
    bound = limits.rss_growth_mib if key == "rss_mib" else limits.fd_growth
    limit = f"<= {bound:g}"
    if not before or not after or key not in before or key not in after:
        return Verdict(AFTER, text, limit, "no data: process usage", passed=False)
    growth = after[key] - before[key]
    measured = f"{before[key]:.0f} -> {after[key]:.0f} ({growth:+.0f})"
    return Verdict(AFTER, text, limit, measured, growth <= bound)


# -- the whole gate -----------------------------------------------------------------------------


def phase_rows(rows: Iterable[RequestRow]) -> dict[str, PhaseRows]:
    grouped: dict[str, list[tuple[ParsedName, RequestRow]]] = {}
    for row in rows:
        parsed = parse_name(row.name)
        if parsed is not None:
            grouped.setdefault(parsed.phase, []).append((parsed, row))
    return {phase: PhaseRows(items) for phase, items in grouped.items()}


def evaluate(profile: Profile, data: RunData) -> list[Verdict]:
    by_phase = phase_rows(data.rows)
    verdicts: list[Verdict] = []
    for phase in profile.phases:
        rows = by_phase.get(phase.name, PhaseRows([]))
        verdicts.extend(evaluate_phase(phase, rows, data, profile))
    verdicts.extend(after_run_checks(data, profile))
    return verdicts


#: Checks judged once per route of the phase's mix, so a team's new route gets rows of its own.
PER_ROUTE: Final = frozenset(
    {"no_bare_500", "error_ratio_max", "success_ratio_min", "route_p99_max"}
)


def evaluate_phase(phase: Phase, rows: PhaseRows, data: RunData, profile: Profile) -> list[Verdict]:
    window = data.windows.get(phase.name, Window())
    verdicts = []
    for slo in phase.slos:
        check = CHECKS[slo.check]
        if slo.check not in PER_ROUTE:
            verdicts.append(check(phase.name, slo, rows, window, profile))
            continue
        for endpoint, _weight in phase.mix:
            routed = replace(slo, text=f"{slo.text}: {endpoint}")
            verdicts.append(check(phase.name, routed, rows.of(endpoint), window, profile))
    return verdicts


def passed(verdicts: Iterable[Verdict]) -> bool:
    verdicts = list(verdicts)
    return bool(verdicts) and all(v.passed for v in verdicts)


def format_table(verdicts: Iterable[Verdict]) -> str:
    header = ("phase", "SLO", "limit", "measured", "result")
    lines = [
        (v.phase, v.slo, v.limit, v.measured, "pass" if v.passed else "FAIL") for v in verdicts
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

    def render(row: tuple[str, ...]) -> str:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def verdict_document(
    profile: Profile,
    verdicts: list[Verdict],
    data: RunData,
    phase_starts: Mapping[str, float],
) -> dict[str, Any]:
    """What ``verdict.json`` holds: the verdicts, the phases with their start times, snapshots."""
    return {
        "profile": profile.name,
        "passed": passed(verdicts),
        "completed": data.completed,
        "phases": [
            {
                "name": phase.name,
                "title": phase.title,
                "seconds": phase.seconds,
                "users": phase.users,
                "faults": [{"target": f.route, **f.body()} for f in phase.faults],
                "started_at": phase_starts.get(phase.name),
            }
            for phase in profile.phases
        ],
        "verdicts": [asdict(v) for v in verdicts],
        "windows": {
            name: {"start": _plain(window.start), "end": _plain(window.end)}
            for name, window in data.windows.items()
        },
        "final": _plain(data.final),
    }


def _plain(snapshot: Snapshot | None) -> dict[str, Any] | None:
    return None if snapshot is None else asdict(snapshot)


def write_verdict(path: Path, document: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def read_verdicts(path: Path) -> tuple[bool, list[Verdict]]:
    document = json.loads(path.read_text())
    verdicts = [Verdict(**v) for v in document["verdicts"]]
    return bool(document["passed"]) and passed(verdicts), verdicts
