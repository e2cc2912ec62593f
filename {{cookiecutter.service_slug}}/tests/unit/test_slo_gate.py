"""The load test's SLO gate, on plain data: no locust, no servers, no timing.

The gate must fail on what it cannot see (a request name never hit, a view the service does not
expose, a run cut short) and compare every measurement with its limit the right way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from {{ cookiecutter.package_name }}.downstream.attempts import BACKSTOP_GRACE_SECONDS
from {{ cookiecutter.package_name }}.downstreams import declared

from loadtest.gate import (
    RequestRow,
    RunData,
    Snapshot,
    Window,
    evaluate,
    format_table,
    histogram_percentile,
    passed,
    phase_rows,
)
from loadtest.naming import (
    BREAKER_OPEN,
    BREAKER_OPENING,
    HEALTHZ,
    breaker_label,
    classify,
    parse_name,
    request_name,
)
from loadtest.profiles import HEDGE_BUDGET_RATIO, Phase, Profile, Slo, make_profile

PROBLEM = {"content-type": "application/problem+json"}

ITEMS = "GET /items/{item_id}"
DETAILS = "GET /items/{item_id}/details"


@pytest.fixture
def profile() -> Profile:
    return make_profile("quick")


def named(profile: Profile, slug: str) -> str:
    """A phase's numbered name, e.g. "15-recovered": numbers depend on which phases run."""
    return next(phase.name for phase in profile.phases if phase.name.endswith(f"-{slug}"))


def row(phase: str, endpoint: str, outcome: str, times: Mapping[int, int]) -> RequestRow:
    count = sum(times.values())
    failures = 0 if outcome in ("", "degraded", "aborted") or outcome.startswith("shed") else count
    return RequestRow(request_name(phase, endpoint, outcome), count, failures, dict(times))


def verdicts_of(profile: Profile, data: RunData, phase: str) -> dict[str, bool]:
    return {v.slo: v.passed for v in evaluate(profile, data) if v.phase == phase}


def slo_text(profile: Profile, phase: str, check: str) -> str:
    slo: Slo = next(s for s in profile.phase(phase).slos if s.check == check)
    return slo.text


def snapshot(t: float, items: int, sent: int, **views: Any) -> Snapshot:
    outcomes = {"ok": sent, "shed": 1000, "breaker_open": 1000}  # never-sent outcomes ignored
    idle: dict[str, Any] = {"outcomes": {}}
    return Snapshot(
        t=t,
        fault={**dict.fromkeys(declared.names(), 0), "catalog": items},
        downstreams={
            **dict.fromkeys(declared.names(), idle),
            "catalog": {"outcomes": outcomes, **views},
        },
    )


# -- missing data fails -------------------------------------------------------------------------


def test_an_empty_run_fails_every_slo(profile: Profile) -> None:
    verdicts = evaluate(profile, RunData(rows=[]))
    assert verdicts
    assert not any(v.passed for v in verdicts)
    assert not passed(verdicts)


def test_a_run_without_verdicts_does_not_pass() -> None:
    assert not passed([])


def test_a_never_hit_request_name_fails_its_slo(profile: Profile) -> None:
    # Phase 2 saw plenty of successes and /healthz calls, but not a single shed response.
    rows = [
        row("2-slow", ITEMS, "", {300: 50}),
        row("2-slow", HEALTHZ, "", {2: 50}),
        row("2-slow", DETAILS, "degraded", {800: 5}),
    ]
    verdicts = [v for v in evaluate(profile, RunData(rows)) if v.phase == "2-slow"]
    shed = next(v for v in verdicts if v.slo == slo_text(profile, "2-slow", "shed_p99_max"))
    assert not shed.passed
    assert shed.measured.startswith("no data")
    healthz = next(v for v in verdicts if v.slo == slo_text(profile, "2-slow", "healthz_p99_max"))
    assert healthz.passed


def test_names_of_other_phases_do_not_count(profile: Profile) -> None:
    rows = [row("1-baseline", ITEMS, "shed shed", {500: 10})]
    assert not verdicts_of(profile, RunData(rows), "2-slow")[
        slo_text(profile, "2-slow", "shed_p99_max")
    ]


# -- limits compare the right way ---------------------------------------------------------------


@pytest.mark.parametrize(("worst_ms", "ok"), [(750, True), (760, False)])
def test_shed_p99_is_compared_with_max_wait_plus_margin(
    profile: Profile, worst_ms: int, ok: bool
) -> None:
    limit_ms = 1000 * (profile.service.bulkhead_max_wait_s + profile.limits.shed_margin_s)
    assert limit_ms == pytest.approx(750)
    rows = [row("2-slow", ITEMS, "shed shed", {500: 98, worst_ms: 2})]  # the 99th of 100
    verdict = verdicts_of(profile, RunData(rows), "2-slow")
    assert verdict[slo_text(profile, "2-slow", "shed_p99_max")] is ok


@pytest.mark.parametrize(("worst_ms", "ok"), [(1500, True), (1600, False)])
def test_a_504_may_arrive_by_the_backstop_not_later(
    profile: Profile, worst_ms: int, ok: bool
) -> None:
    # The limit follows the service's own backstop, not a copy that could drift from it.
    assert profile.limits.backstop_grace_s == BACKSTOP_GRACE_SECONDS
    limits = profile.limits
    limit_s = profile.service.deadline_s + limits.backstop_grace_s + limits.timeout_margin_s
    assert 1000 * limit_s == pytest.approx(1500)
    rows = [row("3-hang", ITEMS, "504 timeout", {1000: 98, worst_ms: 2})]
    verdict = verdicts_of(profile, RunData(rows), "3-hang")
    assert verdict[slo_text(profile, "3-hang", "timeout_p99_max")] is ok


@pytest.mark.parametrize(("errors", "ok"), [(0, True), (4, True), (5, False)])
def test_baseline_error_ratio_is_strictly_below_half_a_percent(
    profile: Profile, errors: int, ok: bool
) -> None:
    rows = [row("1-baseline", ITEMS, "", {10: 1000 - errors})]
    if errors:
        rows.append(row("1-baseline", ITEMS, "502 bad_gateway", {10: errors}))
    text = slo_text(profile, "1-baseline", "error_ratio_max") + f": {ITEMS}"  # one row per route
    assert verdicts_of(profile, RunData(rows), "1-baseline")[text] is ok


@pytest.mark.parametrize(("ok_count", "ok"), [(990, True), (989, False)])
def test_recovery_needs_99_percent_plain_successes(
    profile: Profile, ok_count: int, ok: bool
) -> None:
    recovered = named(profile, "recovered")
    rows = [
        row(recovered, DETAILS, "", {10: ok_count}),
        row(recovered, DETAILS, "degraded", {10: 1000 - ok_count}),
    ]
    text = slo_text(profile, recovered, "success_ratio_min") + f": {DETAILS}"
    assert verdicts_of(profile, RunData(rows), recovered)[text] is ok


@pytest.mark.parametrize("outcome", ["500 problem", "502 bare", "no response"])
def test_a_500_a_bare_error_or_a_dropped_connection_breaks_the_phase(
    profile: Profile, outcome: str
) -> None:
    rows = [
        row("5-refused", ITEMS, "502 bad_gateway", {3: 100}),
        row("5-refused", ITEMS, outcome, {3: 1}),
    ]
    text = slo_text(profile, "5-refused", "no_bare_500") + f": {ITEMS}"
    assert not verdicts_of(profile, RunData(rows), "5-refused")[text]


def test_problem_json_errors_and_sheds_are_not_bare(profile: Profile) -> None:
    rows = [
        row("5-refused", ITEMS, "502 bad_gateway", {3: 100}),
        row("5-refused", ITEMS, "shed breaker_open", {1: 100}),
    ]
    text = slo_text(profile, "5-refused", "no_bare_500") + f": {ITEMS}"
    assert verdicts_of(profile, RunData(rows), "5-refused")[text]


def test_details_must_degrade_and_never_fail_on_pricing(profile: Profile) -> None:
    text = slo_text(profile, "2-slow", "degrades")
    degraded = [row("2-slow", DETAILS, "degraded", {800: 3})]
    failed = [*degraded, row("2-slow", DETAILS, "pricing failed", {800: 1})]
    assert verdicts_of(profile, RunData(degraded), "2-slow")[text]
    assert not verdicts_of(profile, RunData(failed), "2-slow")[text]
    assert not verdicts_of(profile, RunData([]), "2-slow")[text]


def test_only_calls_sent_while_open_count_for_the_open_p99(profile: Profile) -> None:
    # Calls that waited for a bulkhead slot as the breaker opened are refused late: they
    # prove the breaker opened, but say nothing about how fast it refuses once open.
    rows = [
        row("3-hang", ITEMS, "shed breaker_opening", {450: 20}),
        row("3-hang", ITEMS, "shed breaker_open", {3: 200}),
    ]
    verdicts = verdicts_of(profile, RunData(rows), "3-hang")
    assert verdicts[slo_text(profile, "3-hang", "breaker_opens")]
    assert verdicts[slo_text(profile, "3-hang", "breaker_open_p99_max")]
    late = [*rows, row("3-hang", ITEMS, "shed breaker_open", {450: 5})]
    assert not verdicts_of(profile, RunData(late), "3-hang")[
        slo_text(profile, "3-hang", "breaker_open_p99_max")
    ]
    only_opening = rows[:1]
    assert not verdicts_of(profile, RunData(only_opening), "3-hang")[
        slo_text(profile, "3-hang", "breaker_open_p99_max")
    ]


def test_a_refusal_is_while_open_only_after_the_client_saw_the_breaker_open() -> None:
    assert breaker_label(BREAKER_OPEN, started_at=10.0, open_seen_at=None) == BREAKER_OPENING
    assert breaker_label(BREAKER_OPEN, started_at=10.0, open_seen_at=10.5) == BREAKER_OPENING
    assert breaker_label(BREAKER_OPEN, started_at=11.0, open_seen_at=10.5) == BREAKER_OPEN
    assert breaker_label("shed shed", started_at=11.0, open_seen_at=None) == "shed shed"


def test_amplification_compares_received_with_sent(profile: Profile) -> None:
    slo = next(s for s in profile.phase("4-errors").slos if s.check == "amplification_max")
    sent = 1000
    allowed = slo.limit + slo.floor_retries / sent  # one downstream sent anything
    within = int(sent * allowed)
    for received, ok in ((within, True), (within + 2, False)):
        window = Window(snapshot(0, 0, 0), snapshot(1, received, sent))
        data = RunData(rows=[], windows={"4-errors": window})
        assert verdicts_of(profile, data, "4-errors")[slo.text] is ok, received


def test_amplification_without_the_services_view_fails(profile: Profile) -> None:
    window = Window(Snapshot(0, fault={"catalog": 0}), Snapshot(1, fault={"catalog": 10}))
    data = RunData(rows=[], windows={"4-errors": window})
    text = slo_text(profile, "4-errors", "amplification_max")
    assert not verdicts_of(profile, data, "4-errors")[text]


def test_a_failing_downstream_retries_at_most_what_its_tokens_allow(profile: Profile) -> None:
    slo = next(s for s in profile.phase("4-errors").slos if s.check == "retries_max")
    sent = 100  # one downstream: half its tokens, a tenth of a retry per call, one straddling
    allowed = int(1 + slo.limit + slo.per_sent * sent)
    for retries, ok in ((allowed, True), (allowed + 1, False)):
        window = Window(snapshot(0, 0, 0), snapshot(1, sent + retries, sent))
        data = RunData(rows=[], windows={"4-errors": window})
        assert verdicts_of(profile, data, "4-errors")[slo.text] is ok, retries


def test_one_straddling_request_is_not_an_early_retry_two_are(profile: Profile) -> None:
    text = slo_text(profile, "6-throttled", "retries_max")
    for received, ok in ((11, True), (12, False)):
        window = Window(snapshot(0, 0, 0), snapshot(1, received, 10))
        data = RunData(rows=[], windows={"6-throttled": window})
        assert verdicts_of(profile, data, "6-throttled")[text] is ok, received


def test_a_dead_downstream_gets_no_retry_once_its_tokens_are_at_half(profile: Profile) -> None:
    """The 4-errors check, with no token earned back: half the tokens, one straddling, no more."""
    dead = named(profile, "dead")
    slo = next(s for s in profile.phase(dead).slos if s.check == "retries_max")
    assert slo.per_sent == 0  # every call fails: no answer earns a token back
    allowed = int(1 + profile.service.retry_throttle_max_tokens / 2)
    for retries, ok in ((allowed, True), (allowed + 1, False)):
        window = Window(snapshot(0, 0, 0), snapshot(1, 1000 + retries, 1000))
        assert verdicts_of(profile, RunData([], {dead: window}), dead)[slo.text] is ok, retries


def hedged_snapshot(t: float, received: int, sent: int) -> Snapshot:
    """The hedged process's view: its catalog at the fault server's ``hedged-catalog``."""
    tail = profile_tail(make_profile("quick"))
    ((route, downstream),) = next(s for s in tail.slos if s.check == "amplification_max").routes
    views = {downstream: {"outcomes": {"ok": sent}}}
    return Snapshot(t, fault={route: received}, downstreams=views)


def profile_tail(profile: Profile) -> Phase:
    return profile.phase(named(profile, "tail"))


@pytest.mark.parametrize(("worst_ms", "ok"), [(150, True), (160, False)])
def test_the_tail_phase_wants_p99_cut_to_a_quarter_of_the_tail_latency(
    profile: Profile, worst_ms: int, ok: bool
) -> None:
    tail = profile_tail(profile)
    slo = next(s for s in tail.slos if s.check == "route_p99_max")
    assert slo.limit == pytest.approx(0.25 * 0.6)  # 0.25 x the 600 ms tail of the quick profile
    rows = [row(tail.name, ITEMS, "", {12: 98, worst_ms: 2})]  # the 99th of 100
    assert verdicts_of(profile, RunData(rows), tail.name)[f"{slo.text}: {ITEMS}"] is ok


def test_the_tail_phase_counts_extra_requests_against_the_hedge_budget(profile: Profile) -> None:
    tail = profile_tail(profile)
    slo = next(s for s in tail.slos if s.check == "amplification_max")
    assert slo.limit == pytest.approx(1 + HEDGE_BUDGET_RATIO + profile.limits.hedge_extra_margin)
    sent = 1000  # ratio + margin, and the burst of 5: 125 extra requests
    for received, ok in ((1124, True), (1126, False)):
        window = Window(hedged_snapshot(0, 0, 0), hedged_snapshot(1, received, sent))
        assert verdicts_of(profile, RunData([], {tail.name: window}), tail.name)[slo.text] is ok


def test_the_tail_phase_runs_on_a_hedged_process_and_changes_no_other_phase() -> None:
    with_variant, without = make_profile("quick"), make_profile("default", variants=False)
    tail = profile_tail(with_variant)
    assert tail.variant is not None
    assert ("HEDGE__ENABLED", "true") in tail.variant.settings
    adaptive = with_variant.phase(named(with_variant, "adaptive"))
    assert adaptive.variant is not None
    assert ("BULKHEAD__ADAPTIVE", "true") in adaptive.variant.settings
    assert with_variant.variants == (tail.variant, adaptive.variant)
    assert all(f.route == tail.variant.route("catalog") for f in tail.faults)  # its own paths
    assert not any(p.name.endswith(("-tail", "-adaptive")) for p in without.phases)
    assert not without.variants
    others = [p for p in with_variant.phases if p.variant is None]
    plain = make_profile("quick", variants=False).phases
    assert [(p.title, p.slos, p.variant) for p in others] == [
        (p.title, p.slos, p.variant) for p in plain
    ]


@pytest.mark.parametrize(
    ("width", "ok"), [(1, False), (2, True), (4, True), (8, True), (9, False), (None, False)]
)
def test_the_adaptive_limit_ends_within_twice_the_capacity(
    profile: Profile, width: int | None, ok: bool
) -> None:
    """Capacity 4 in the quick profile: 2..8; the fixed width (10) it starts from fails, and
    so does a view without the bulkhead's limit."""
    phase = profile.phase(named(profile, "adaptive"))
    slo = next(s for s in phase.slos if s.check == "limit_near_capacity")
    assert slo.limit == 4
    bulkhead = {} if width is None else {"limit": width}
    end = Snapshot(2.0, downstreams={"catalog": {"bulkhead": bulkhead}})
    window = Window(Snapshot(1.0), end)
    assert verdicts_of(profile, RunData([], {phase.name: window}), phase.name)[slo.text] is ok


# -- after the run ------------------------------------------------------------------------------

DRAINED: dict[str, Any] = {
    "in_flight": 0,
    "queued": 0,
    "pool": {"connecting": 0, "active": 0, "requests_active": 0, "requests_queued": 0},
    "leaked_responses": 0,
    "open_streams": 0,
}


def after(profile: Profile, final: Snapshot | None, *, completed: bool = True) -> dict[str, bool]:
    baseline = Snapshot(0, usage={"rss_mib": 70.0, "open_fds": 30.0})
    windows = {profile.phases[0].name: Window(end=baseline)}
    data = RunData(rows=[], windows=windows, final=final, completed=completed)
    return verdicts_of(profile, data, "after")


def test_a_drained_service_passes_the_after_run_checks(profile: Profile) -> None:
    final = Snapshot(
        9,
        downstreams={"catalog": DRAINED, "pricing": DRAINED},
        usage={"rss_mib": 80, "open_fds": 31},
    )
    assert all(after(profile, final).values())


def test_a_connection_left_in_the_pool_fails(profile: Profile) -> None:
    leaked = {**DRAINED, "pool": {**DRAINED["pool"], "active": 1, "requests_active": 1}}
    final = Snapshot(
        9,
        downstreams={"catalog": DRAINED, "pricing": leaked},
        usage={"rss_mib": 80, "open_fds": 31},
    )
    results = after(profile, final)
    assert not results["no orphan connection, no request in the pool"]
    assert results["zero in flight, zero queued"]


def test_growth_beyond_the_bounds_fails(profile: Profile) -> None:
    rss = 70.0 + profile.limits.rss_growth_mib + 1
    fds = 30.0 + profile.limits.fd_growth + 1
    final = Snapshot(9, downstreams={"catalog": DRAINED}, usage={"rss_mib": rss, "open_fds": fds})
    results = after(profile, final)
    assert not results["RSS growth since baseline (MiB)"]
    assert not results["open fds growth since baseline"]


def test_no_debug_view_or_an_interrupted_run_fails(profile: Profile) -> None:
    assert not any(after(profile, Snapshot(9)).values())
    assert list(after(profile, None, completed=False).values()) == [False]


# -- building blocks ----------------------------------------------------------------------------


def test_percentile_of_a_histogram() -> None:
    histogram = {10: 98, 200: 1, 900: 1}
    assert histogram_percentile(histogram, 0.5) == 10
    assert histogram_percentile(histogram, 0.99) == 200
    assert histogram_percentile(histogram, 1.0) == 900
    assert histogram_percentile({}, 0.99) is None


def test_every_route_gets_rows_of_its_own(profile: Profile) -> None:
    rows = [row("5-refused", ITEMS, "502 bad_gateway", {3: 100})]  # /details never answered
    verdicts = verdicts_of(profile, RunData(rows), "5-refused")
    text = slo_text(profile, "5-refused", "no_bare_500")
    assert verdicts[f"{text}: {ITEMS}"]
    assert not verdicts[f"{text}: {DETAILS}"]  # a route the run never exercised proves nothing
    assert f"{text}: {HEALTHZ}" in verdicts


def test_names_round_trip_and_group_by_phase() -> None:
    name = request_name("3-hang", ITEMS, "shed breaker_open")
    assert name == "[3-hang] GET /items/{item_id} (shed breaker_open)"
    parsed = parse_name(name)
    assert parsed is not None
    assert (parsed.phase, parsed.endpoint, parsed.shed_reason) == ("3-hang", ITEMS, "breaker_open")
    assert parse_name("Aggregated") is None
    grouped = phase_rows([row("3-hang", ITEMS, "", {1: 1}), RequestRow("other", 1, 0, {1: 1})])
    assert list(grouped) == ["3-hang"]


def test_a_503_is_an_expected_shed_only_with_retry_after_and_problem_json() -> None:
    body = b'{"status": 503, "reason": "shed", "downstream": "catalog"}'
    shed = classify(503, {**PROBLEM, "retry-after": "1"}, body)
    assert (shed.label, shed.success) == ("shed shed", True)
    no_retry_after = classify(503, PROBLEM, body)
    assert (no_retry_after.label, no_retry_after.success) == ("503 shed", False)
    plain = classify(503, {"retry-after": "1", "content-type": "text/plain"}, b"busy")
    assert (plain.label, plain.success) == ("503 bare", False)


def test_details_outcomes() -> None:
    degraded = classify(200, {}, b'{"id": "1", "price": null, "degraded": true}')
    assert (degraded.label, degraded.success) == ("degraded", True)
    on_pricing = classify(
        502, PROBLEM, b'{"downstream": "pricing", "reason": "bad_gateway"}', optional=("pricing",)
    )
    assert (on_pricing.label, on_pricing.success) == ("pricing failed", False)


def test_only_an_impatient_clients_timeout_is_an_intended_abort() -> None:
    assert classify(0, {}, b"", impatient=True, timed_out=True).success
    assert not classify(0, {}, b"", impatient=True, timed_out=False).success
    assert not classify(0, {}, b"", timed_out=True).success


def test_the_table_names_every_slo(profile: Profile) -> None:
    verdicts = evaluate(profile, RunData(rows=[]))
    table = format_table(verdicts)
    assert table.splitlines()[0].split() == ["phase", "SLO", "limit", "measured", "result"]
    assert len(table.splitlines()) == len(verdicts) + 2
    assert all(v.slo in table for v in verdicts)


@pytest.mark.parametrize(
    ("lines", "passes"),
    [
        (0, True),
        (len(declared.names()) * 3 * 10, True),
        (len(declared.names()) * 3 * 10 + 1, False),
    ],
)
def test_every_phase_gates_the_service_log_rate_per_downstream(
    profile: Profile, lines: int, passes: bool
) -> None:
    text = slo_text(profile, "4-errors", "log_rate_max")  # any phase: every one carries it
    views: dict[str, Any] = {name: {} for name in declared.names()}
    start = Snapshot(t=100.0, downstreams=views, log_lines=500)
    end = Snapshot(t=110.0, downstreams=views, log_lines=500 + lines)
    data = RunData([], {"4-errors": Window(start, end)})
    assert verdicts_of(profile, data, "4-errors")[text] is passes


def test_an_unreadable_service_log_fails_the_log_rate(profile: Profile) -> None:
    text = slo_text(profile, "1-baseline", "log_rate_max")
    data = RunData([], {"1-baseline": Window(Snapshot(t=1.0), Snapshot(t=2.0))})
    assert verdicts_of(profile, data, "1-baseline")[text] is False


def test_http2_adds_its_phases_and_every_profile_ends_quiet_then_recovered() -> None:
    plain, http2 = make_profile("quick"), make_profile("quick", http2=True)
    slugs = [phase.name.split("-", 1)[1] for phase in http2.phases]
    assert [p.name.split("-", 1)[1] for p in plain.phases] == [
        slug for slug in slugs if slug != "streams"
    ]
    assert {"streams", "goaway", "reset-stream", "bad-head", "idle-close"} <= set(slugs)
    assert slugs[-2:] == ["quiet", "recovered"]
    quiet = http2.phase(named(http2, "quiet"))
    assert quiet.users == 0
    assert quiet.seconds > http2.service.breaker_open_max_s  # every open period can end
    assert [p.name for p in http2.phases] == [f"{n}-{s}" for n, s in enumerate(slugs, start=1)]


@pytest.mark.parametrize(
    ("before", "after", "ok"),
    [
        ("open", "closed", True),
        ("open", "half_open", True),
        ("half_open", "closed", True),
        ("open", "open", False),  # still refusing when traffic returns
        ("closed", "closed", False),  # nothing was open: the phase proved nothing
    ],
)
def test_a_quiet_phase_needs_an_open_breaker_to_be_ready_by_its_end(
    profile: Profile, before: str, after: str, ok: bool
) -> None:
    quiet = named(profile, "quiet")
    text = slo_text(profile, quiet, "breaker_ready")
    others = {name: {"breaker": "closed"} for name in declared.names() if name != "catalog"}
    start = Snapshot(t=1.0, downstreams={**others, "catalog": {"breaker": before}})
    end = Snapshot(t=4.0, downstreams={**others, "catalog": {"breaker": after}})
    assert verdicts_of(profile, RunData([], {quiet: Window(start, end)}), quiet)[text] is ok


@pytest.mark.parametrize("slug", ["truncated", "reset-stream", "bad-head"])
@pytest.mark.parametrize(("before", "after", "ok"), [(3, 40, True), (3, 3, False)])
def test_a_broken_protocol_phase_wants_the_service_to_count_bad_gateways(
    profile: Profile, slug: str, before: int, after: int, ok: bool
) -> None:
    """Counted by the service, so an open breaker's probes count too."""
    phase = named(profile, slug)
    text = slo_text(profile, phase, "bad_gateways_named")
    start = snapshot(1.0, 0, 0, outcomes={"bad_gateway": before})
    end = snapshot(4.0, 0, 0, outcomes={"bad_gateway": after})
    assert verdicts_of(profile, RunData([], {phase: Window(start, end)}), phase)[text] is ok
