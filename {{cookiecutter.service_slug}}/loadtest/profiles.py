"""Every number of the load test in one place: phases, users, faults, service settings, SLOs.

A profile is data. ``quick`` (CI, <= 105 s with start-up) runs the service with short breaker
and deadline settings so that each scenario fits in a few seconds; ``default`` (<= 8 min) runs
it with the settings the service ships with. To change a limit for one run, pass
``--limit NAME=VALUE`` to ``python -m loadtest`` (names: the fields of ``Limits``); to change a
phase, edit its builder below: the SLOs are derived from the same numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from loadtest.naming import HEALTHZ, Route
from loadtest.routes import ROUTES

#: A phase's users come in at this rate (per second): fast enough that a phase of a few
#: seconds runs at its user count, and that a spike is a spike.
SPAWN_RATE: Final = 100.0


@dataclass(frozen=True)
class FaultSpec:
    """One ``PUT /__admin/faults/{route}`` of the fault server."""

    route: str  # a downstream's name (the runner gives each its own base path), or "*"
    mode: str
    params: Mapping[str, float] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        return {"mode": self.mode, **self.params}


@dataclass(frozen=True)
class ServiceSettings:
    """What the runner sets on every downstream of the service, and what the limits derive from.

    The defaults are the service's own; a profile changes only what it must to fit its time.
    """

    deadline_s: float = 5.0
    bulkhead_max_wait_s: float = 0.5
    breaker_window_s: int = 10
    breaker_minimum_calls: int = 20
    breaker_open_s: float = 5.0
    breaker_open_max_s: float = 30.0
    breaker_half_open_calls: int = 10
    budget_ratio: float = 0.2
    budget_min_per_second: float = 5.0
    budget_window_s: int = 10
    retry_after_cap_s: float = 5.0
    retry_throttle_max_tokens: float = 10.0
    retry_throttle_token_ratio: float = 0.1
    #: The fault server answers every path: a breaker's health probe goes to the downstream's
    #: base path like its calls, so it sees the same faults.
    breaker_probe_path: str = "/healthz"

    def environment(self, prefix: str, downstreams: list[str]) -> dict[str, str]:
        """``<PREFIX>DOWNSTREAMS__<NAME>__...`` variables for every downstream."""
        fields = {
            "DEADLINE_SECONDS": self.deadline_s,
            "BULKHEAD__MAX_WAIT": self.bulkhead_max_wait_s,
            "BREAKER__WINDOW_SECONDS": self.breaker_window_s,
            "BREAKER__MINIMUM_CALLS": self.breaker_minimum_calls,
            "BREAKER__OPEN_DURATION": self.breaker_open_s,
            "BREAKER__OPEN_DURATION_MAX": self.breaker_open_max_s,
            "BREAKER__HALF_OPEN_CALLS": self.breaker_half_open_calls,
            "BREAKER__PROBE_PATH": self.breaker_probe_path,
            "RETRY__BUDGET_RATIO": self.budget_ratio,
            "RETRY__BUDGET_MIN_PER_SECOND": self.budget_min_per_second,
            "RETRY__BUDGET_WINDOW_SECONDS": self.budget_window_s,
            "RETRY__RETRY_AFTER_CAP": self.retry_after_cap_s,
            "RETRY__THROTTLE_MAX_TOKENS": self.retry_throttle_max_tokens,
            "RETRY__THROTTLE_TOKEN_RATIO": self.retry_throttle_token_ratio,
        }
        return {
            f"{prefix}DOWNSTREAMS__{name.upper()}__{key}": str(value)
            for name in downstreams
            for key, value in fields.items()
        }


@dataclass(frozen=True)
class Variant:
    """A second service process for phases that need a setting the rest of the run must not see.

    Hedging and the adaptive limit are off as the service ships, and a downstream's settings
    are fixed at start-up. Why a second process, and not a switch in the service or a restart:
    an HTTP endpoint that changes a downstream's resilience at run time is a door a production
    service must not have; a restart mid-run would reset the breakers, pools and the RSS/fd
    baseline the other phases are judged by; a setting turned on for the whole run would change
    what every other phase measures. The runner starts this process next to the service (in
    parallel, so it adds no start-up time), with ``settings`` on every downstream and each
    downstream at its own base path on the fault server (``/<variant>-<downstream>``): its
    phase's faults and request counts are its own, and every other phase runs against the
    service exactly as configured. It costs one mostly idle process.
    """

    name: str  # short, [a-z]: part of the fault server's base paths
    #: ``<PREFIX>DOWNSTREAMS__<NAME>__<key>`` = value, on every downstream of this process.
    settings: tuple[tuple[str, str], ...]

    def route(self, downstream: str) -> str:
        """The fault server's route (first path segment) of ``downstream`` in this process."""
        return f"{self.name}-{downstream}"

    @property
    def log_name(self) -> str:
        """Its log, next to the service's in the run folder."""
        return f"service-{self.name}.log"


#: The tail phase's hedge budget (the README's measured configuration) and the service's burst
#: (``hedging.BUDGET_BURST``): the extra requests are judged by both.
HEDGE_BUDGET_RATIO: Final = 0.1
HEDGE_BURST: Final = 5.0


@dataclass(frozen=True)
class Limits:
    """SLO limits that are not derived from the service's settings (seconds unless named)."""

    baseline_error_ratio: float = 0.005
    #: A shed answers within the bulkhead's max wait plus this: the event loops' lag on a loaded
    #: machine (quick, slow phase: 510-520 ms alone; 640 ms with the service, fault server, a
    #: locust master and two workers on two cores). Half the gap to quick's deadline, so a
    #: bulkhead that queues to the deadline instead of shedding still fails.
    shed_margin_s: float = 0.25
    healthz_p99_s: float = 0.1
    #: The service's ``attempts.BACKSTOP_GRACE_SECONDS``: an HTTP/2 stream waiting for its
    #: connection's read lock has no httpx timeout, so the backstop ends it this long after
    #: the deadline (a unit test keeps the two equal).
    backstop_grace_s: float = 0.3
    #: A 504 arrives within the deadline, the backstop's grace and this.
    timeout_margin_s: float = 0.2
    #: An open breaker's refusal costs ~20 us (make bench's micro-benchmark); this p99 is
    #: locust's and the event loop's on a loaded machine (8-11 ms here, once over 20 ms in CI
    #: over TLS). 50 ms still tells fail-fast from any wait in the pipeline (the bulkhead's
    #: shortest is its 500 ms max wait).
    breaker_open_p99_s: float = 0.05
    #: received / sent <= 1 + what the retry budget allows + this.
    amplification_margin: float = 0.05
    refused_p99_s: float = 0.5
    #: Throttled: retries seen downstream (received - sent) <= 1 + this share of sent.
    early_retry_margin: float = 0.02
    recovery_success_ratio: float = 0.99
    #: After the run: how long calls get to finish before the debug view is judged.
    drain_grace_s: float = 3.0
    #: The service's log lines a second, per downstream, in any phase (all levels).
    log_lines_per_second: float = 3.0
    rss_growth_mib: float = 64.0
    fd_growth: float = 16.0
    #: Tail phase, hedging on: p99 of the affected route <= this share of the tail latency.
    hedge_p99_fraction: float = 0.25
    #: Tail phase: received / sent <= 1 + the hedge budget (ratio and burst) + this.
    hedge_extra_margin: float = 0.02
    #: Adaptive phase: at its end the limit is within capacity / this .. capacity * this.
    adaptive_band: float = 2.0

    def with_overrides(self, overrides: Mapping[str, float]) -> Limits:
        unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown limit(s) {unknown}; known: {limit_names()}")
        return dataclasses.replace(self, **{k: float(v) for k, v in overrides.items()})


def limit_names() -> list[str]:
    return [f.name for f in dataclasses.fields(Limits)]


@dataclass(frozen=True)
class Slo:
    """One check the gate runs on a phase (``check`` names a function in ``gate.CHECKS``)."""

    check: str
    text: str
    limit: float = 0.0
    #: amplification only: retries the budget's floor allows each downstream in the phase.
    floor_retries: float = 0.0
    #: retries_max only: retries allowed per call sent, on top of ``limit`` per downstream.
    per_sent: float = 0.0
    #: received/sent checks: (fault-server target, service downstream) pairs compared.
    routes: tuple[tuple[str, str], ...] = ()


Mix = tuple[tuple[str, int], ...]


def full_mix(routes: tuple[Route, ...], healthz_weight: int = 1) -> Mix:
    """What users call, with weights: every route, and /healthz."""
    return (*((route.endpoint, route.weight) for route in routes), (HEALTHZ, healthz_weight))


def single_downstream(routes: tuple[Route, ...]) -> tuple[Route, ...]:
    """Routes whose calls reach exactly one downstream, so what the service sent can be compared
    with what that downstream received (a route with a second downstream cancels it when the
    first fails, and a cancelled call has no outcome)."""
    return tuple(r for r in routes if len(r.calls) == 1 and not r.degrades_without)


@dataclass(frozen=True)
class Phase:
    name: str  # unique, short: it is part of every request name, e.g. "[3-hang] GET /items"
    title: str
    seconds: float
    users: int
    faults: tuple[FaultSpec, ...]
    slos: tuple[Slo, ...]
    mix: Mix
    impatient: bool = False  # users give up on a request after IMPATIENT_TIMEOUT_S
    variant: Variant | None = None  # the users call this process, not the service


#: Users of the impatient phase abort any request slower than this (see locustfile).
IMPATIENT_TIMEOUT_S: Final = 0.15


@dataclass(frozen=True)
class Profile:
    name: str
    phases: tuple[Phase, ...]
    service: ServiceSettings
    limits: Limits

    @property
    def seconds(self) -> float:
        return sum(phase.seconds for phase in self.phases)

    @property
    def variants(self) -> tuple[Variant, ...]:
        """The processes the runner starts next to the service, one per variant."""
        return tuple(dict.fromkeys(p.variant for p in self.phases if p.variant is not None))

    def phase_at(self, elapsed_s: float) -> Phase | None:
        """The phase running ``elapsed_s`` after the start; None once the last one ended."""
        end = 0.0
        for phase in self.phases:
            end += phase.seconds
            if elapsed_s < end:
                return phase
        return None

    def phase(self, name: str) -> Phase:
        for phase in self.phases:
            if phase.name == name:
                return phase
        raise KeyError(name)


@dataclass(frozen=True)
class Shape:
    """The profile-specific numbers the phase builder turns into phases and SLOs."""

    seconds: Mapping[str, float]
    base_users: int
    slow_users: int
    spike_users: int
    healthy_latency_ms: float
    slow_items_ms: float
    slow_prices_ms: float
    spike_latency_ms: float
    impatient_latency_ms: float
    throttle_retry_after_s: int
    #: idle_close: the fault server closes a connection idle this long (below users' think time).
    idle_close_ms: float
    #: goaway: every HTTP/2 connection is sent GOAWAY after this many requests.
    goaway_after_requests: int
    #: tail: this share of answers takes tail_latency_ms, the rest healthy_latency_ms. With
    #: 30 users (~550 calls in 6 s) unhedged p99 is the tail (~17 slow calls, 5 allowed), and a
    #: 10 % budget hedges all but the few before its first token.
    tail_rate: float = 0.03
    tail_latency_ms: float = 600
    hedge_delay_ms: float = 50
    #: adaptive: the downstream slows down past this many calls in flight (degrade mode). At
    #: 20 ms, 30 users kept ~2 calls in flight and the limit had nothing to follow; at 50 ms
    #: 40 users offer ~6, and a fixed width of 10 fills up.
    degrade_capacity: int = 4
    degrade_latency_ms: float = 50


def build_phases(
    shape: Shape,
    service: ServiceSettings,
    limits: Limits,
    routes: tuple[Route, ...] = ROUTES,
    *,
    http2: bool = False,
    variants: bool = True,
) -> tuple[Phase, ...]:
    """The scenarios of the suite, with their SLOs computed from the same numbers; ``http2`` adds
    the faults only an HTTP/2 connection has (the runner's ``--tls``); ``variants`` the phases
    that run against a second service process (``Variant``: only the runner can start one)."""
    s = shape.seconds
    mix = full_mix(routes)
    single = single_downstream(routes) or routes
    compared = tuple(sorted({(r.calls[0], r.calls[0]) for r in single if r.calls}))
    single_mix = (*full_mix(single)[:-1], (HEALTHZ, 1))
    # A downstream some route degrades without is made slower still: past the deadline those
    # routes must answer degraded, not fail.
    optional = sorted({name for r in routes for name in r.degrades_without})
    required = sorted({name for r in routes for name in r.calls} - set(optional))
    slow = (
        *(FaultSpec(name, "slow", {"latency_ms": shape.slow_items_ms}) for name in required),
        *(FaultSpec(name, "slow", {"latency_ms": shape.slow_prices_ms}) for name in optional),
    )
    degrade = (
        (Slo("degrades", "routes degrade (degraded: true), never fail on an optional downstream"),)
        if optional
        else ()
    )
    healthy = (FaultSpec("*", "healthy", {"latency_ms": shape.healthy_latency_ms}),)
    deadline = service.deadline_s
    shed_p99 = service.bulkhead_max_wait_s + limits.shed_margin_s
    no_500 = Slo("no_bare_500", "no 500, no bare error, no dropped connection")
    throttle = shape.throttle_retry_after_s
    if throttle <= min(deadline, service.retry_after_cap_s):
        raise ValueError("throttle Retry-After must exceed the deadline or the retry cap")
    timeout_p99 = deadline + limits.backstop_grace_s + limits.timeout_margin_s
    within_deadline = Slo(
        "all_p99_max", "p99 of every response <= deadline + backstop grace + margin", timeout_p99
    )
    timed_out = Slo("timeout_p99_max", "504 p99 <= deadline + backstop grace + margin", timeout_p99)
    # Retries the budget allows: ``ratio`` per call, also for calls made up to one window
    # before the phase, plus a floor of min_per_second * window in every window.
    errors_s, window = s["errors"], service.budget_window_s
    amplification = (
        1.0 + service.budget_ratio * (1.0 + window / errors_s) + limits.amplification_margin
    )
    floor_retries = math.ceil(errors_s / window) * service.budget_min_per_second * window
    open_p99 = limits.breaker_open_p99_s
    recovered = limits.recovery_success_ratio
    quiet_s = service.breaker_open_max_s + 1.0
    bad_gateway = Slo("bad_gateways_named", "the service counts them bad_gateway (calls, probes)")

    def broken(slug: str, title: str, mode: str) -> Phase:
        faults = (FaultSpec("*", mode),)
        return Phase(slug, title, s[slug], shape.base_users, faults, (no_500, bad_gateway), mix)

    phases = [
        Phase(
            "baseline",
            "healthy downstream",
            s["baseline"],
            shape.base_users,
            healthy,
            (Slo("error_ratio_max", "error ratio (non-2xx)", limits.baseline_error_ratio),),
            mix,
        ),
        Phase(
            "slow",
            "slow downstream, far beyond pool capacity",
            s["slow"],
            shape.slow_users,
            slow,
            (
                no_500,
                Slo("shed_p99_max", "shed 503 p99 <= bulkhead max wait + margin", shed_p99),
                Slo("healthz_p99_max", "/healthz p99", limits.healthz_p99_s),
                *degrade,
            ),
            # /healthz's p99 is judged too: enough calls that one slow outlier is not the p99.
            full_mix(routes, healthz_weight=3),
        ),
        Phase(
            "hang",
            "downstream accepts and never answers",
            s["hang"],
            shape.base_users * 3,
            (FaultSpec("*", "hang"),),
            (
                no_500,
                timed_out,
                Slo("breaker_opens", "the breaker opens (503 breaker_open seen)"),
                Slo("breaker_open_p99_max", "p99 of calls sent while open", open_p99),
            ),
            mix,
        ),
        Phase(
            "errors",
            "50 % of downstream calls answer 503",
            s["errors"],
            shape.base_users * 2,
            (FaultSpec("*", "error", {"error_rate": 0.5, "status": 503}),),
            (
                no_500,
                Slo(
                    "amplification_max",
                    "downstream received / service sent (retry budget)",
                    amplification,
                    floor_retries=floor_retries,
                    routes=compared,
                ),
                Slo(
                    "retries_max",
                    "retries seen downstream (retry tokens: none while at or below half)",
                    service.retry_throttle_max_tokens / 2,
                    per_sent=service.retry_throttle_token_ratio,
                    routes=compared,
                ),
            ),
            single_mix,
        ),
        Phase(
            "refused",
            "downstream refuses connections",
            s["refused"],
            shape.base_users,
            (FaultSpec("*", "refuse"),),
            (
                no_500,
                Slo("all_p99_max", "p99 of every response (fails fast)", limits.refused_p99_s),
            ),
            mix,
        ),
        Phase(
            "throttled",
            f"downstream answers 429 with Retry-After: {throttle}",
            s["throttled"],
            shape.base_users,
            (FaultSpec("*", "throttle", {"retry_after": throttle}),),
            (
                no_500,
                Slo(
                    "retries_max",
                    f"retries seen downstream (Retry-After {throttle} s > deadline)",
                    0.0,
                    per_sent=limits.early_retry_margin,
                    routes=compared,
                ),
            ),
            single_mix,
        ),
        Phase(
            "spike",
            f"{shape.spike_users} users (10x) on a healthy downstream",
            s["spike"],
            shape.spike_users,
            (FaultSpec("*", "healthy", {"latency_ms": shape.spike_latency_ms}),),
            (
                no_500,
                Slo("sheds_present", "overload is shed (503 + Retry-After seen)"),
                Slo("shed_p99_max", "shed 503 p99 <= bulkhead max wait + margin", shed_p99),
                Slo("all_p99_max", "p99 of every response <= deadline", deadline),
            ),
            mix,
        ),
    ]
    impatient = Phase(
        "impatient",
        f"clients abort after {IMPATIENT_TIMEOUT_S * 1000:g} ms on a slow downstream",
        s["impatient"],
        shape.base_users * 2,  # the users added are impatient: start from base_users
        (FaultSpec("*", "slow", {"latency_ms": shape.impatient_latency_ms}),),
        (no_500, Slo("aborted_present", "clients aborted requests in flight")),
        mix,
        impatient=True,
    )
    idle_close = Phase(
        "idle-close",
        f"downstream closes connections idle {shape.idle_close_ms:g} ms (in the pool)",
        s["idle-close"],
        shape.base_users,
        (FaultSpec("*", "idle_close", {"idle_ms": shape.idle_close_ms}),),
        (no_500, Slo("success_ratio_min", "success ratio (2xx, not degraded)", recovered)),
        mix,
    )
    streams = Phase(
        "streams",
        "HTTP/2 downstream lowers MAX_CONCURRENT_STREAMS to 1 on live connections",
        s["streams"],
        shape.base_users * 2,
        (FaultSpec("*", "streams", {"max_streams": 1}),),
        (no_500, within_deadline),
        mix,
    )
    goaway = Phase(
        "goaway",
        f"connections recycled every {shape.goaway_after_requests} requests (HTTP/2: GOAWAY)",
        s["goaway"],
        shape.base_users,
        (FaultSpec("*", "goaway", {"after_requests": shape.goaway_after_requests}),),
        (no_500, within_deadline),
        mix,
    )
    malformed = Phase(
        "malformed",
        "downstream answers 200 with a body that is not JSON",
        s["malformed"],
        shape.base_users,
        (FaultSpec("*", "malformed"),),
        (no_500, Slo("bad_bodies_named", "malformed answers are 502 bad_body, never a 500")),
        mix,
    )
    # Every call fails: after the tokens above half are spent, not one retry (gRPC's throttling).
    # Without throttling, the shipped retry budget let 28 retries through in 3 s (quick); quick's
    # own budget (a floor of 1/s) let 5, under this limit: there the two guards overlap.
    on_variant = (shape, limits, single, no_500)
    dead = Phase(
        "dead",
        "every downstream call answers 503 (a dead downstream)",
        s["dead"],
        shape.base_users * 2,
        (FaultSpec("*", "error", {"error_rate": 1.0, "status": 503}),),
        (
            no_500,
            Slo(
                "retries_max",
                "retries seen downstream (retry tokens: none once at half, none earned)",
                service.retry_throttle_max_tokens / 2,
                routes=compared,
            ),
        ),
        single_mix,
    )
    quiet = Phase(
        "quiet",
        f"healthy, and no traffic for {quiet_s:g} s (the longest open period + 1 s)",
        quiet_s,
        0,
        healthy,
        (Slo("breaker_ready", "breakers closed or half-open before traffic returns"),),
        mix,
    )
    back = Phase(
        "recovered",
        "traffic returns",
        s["recovered"],
        shape.base_users,
        healthy,
        (Slo("success_ratio_min", "success ratio (2xx, not degraded)", recovered),),
        mix,
    )
    # Locust keeps a phase's users when the next has as many or fewer: impatient follows a phase
    # of base_users, so the users it adds are the impatient ones.
    phases += [
        idle_close,
        *((streams,) if http2 else ()),
        malformed,
        broken("truncated", "bodies end before their Content-Length", "truncated"),
        impatient,
        broken("reset-stream", "every call reset (HTTP/2: RST_STREAM)", "reset_stream"),
        goaway,
        broken("bad-head", "response heads that do not parse", "bad_head"),
        # On a process of its own: the service is idle meanwhile (its breakers may close).
        *(
            (tail_phase(*on_variant), adaptive_phase(*on_variant))
            if variants and single[0].calls
            else ()
        ),
        dead,  # opens the breakers again: the quiet phase must see one open
        quiet,
        back,
    ]
    log_rate = Slo(
        "log_rate_max", "service log lines a second, per downstream", limits.log_lines_per_second
    )
    return tuple(
        dataclasses.replace(phase, name=f"{number}-{phase.name}", slos=(*phase.slos, log_rate))
        for number, phase in enumerate(phases, start=1)
    )


def tail_phase(shape: Shape, limits: Limits, single: tuple[Route, ...], no_500: Slo) -> Phase:
    """A few slow answers from one downstream, hedging on (``Variant``): hedges cut the route's
    p99 to a fraction of the tail latency, and cost the downstream at most the hedge budget."""
    route = single[0]
    downstream = route.calls[0]
    hedged = Variant(
        "hedged",
        (
            ("HEDGE__ENABLED", "true"),
            ("HEDGE__DELAY", f"{shape.hedge_delay_ms / 1000:g}"),
            ("HEDGE__BUDGET_RATIO", f"{HEDGE_BUDGET_RATIO:g}"),
        ),
    )
    target = hedged.route(downstream)
    tail = {
        "tail_rate": shape.tail_rate,
        "tail_latency_ms": shape.tail_latency_ms,
        "latency_ms": shape.healthy_latency_ms,
    }
    fraction = limits.hedge_p99_fraction
    return Phase(
        "tail",
        f"{shape.tail_rate:.0%} of {downstream}'s answers take {shape.tail_latency_ms:g} ms; "
        f"hedged after {shape.hedge_delay_ms:g} ms",
        shape.seconds["tail"],
        shape.base_users * 3,
        (FaultSpec(target, "tail", tail),),
        (
            no_500,
            Slo(
                "route_p99_max",
                f"p99 <= {fraction:g} x the tail latency (hedges cut the tail)",
                fraction * shape.tail_latency_ms / 1000,
            ),
            Slo(
                "amplification_max",
                "downstream received / service sent (hedge budget: ratio, burst)",
                1.0 + HEDGE_BUDGET_RATIO + limits.hedge_extra_margin,
                floor_retries=HEDGE_BURST,
                routes=((target, downstream),),
            ),
        ),
        ((route.endpoint, 1),),
        variant=hedged,
    )


def adaptive_phase(shape: Shape, limits: Limits, single: tuple[Route, ...], no_500: Slo) -> Phase:
    """A downstream past its capacity, the adaptive limit on (``Variant``): the bulkhead's width
    comes down near that capacity within the phase, from the fixed width it starts at."""
    route = single[0]
    downstream = route.calls[0]
    adaptive = Variant("adaptive", (("BULKHEAD__ADAPTIVE", "true"),))
    target = adaptive.route(downstream)
    capacity, band = shape.degrade_capacity, limits.adaptive_band
    degrade = {"capacity": capacity, "latency_ms": shape.degrade_latency_ms}
    return Phase(
        "adaptive",
        f"{downstream} slows past {capacity} calls in flight; adaptive limit on",
        shape.seconds["adaptive"],
        shape.base_users * 4,
        (FaultSpec(target, "degrade", degrade),),
        (
            no_500,
            Slo(
                "limit_near_capacity",
                f"bulkhead limit at the end within {band:g}x of the capacity",
                capacity,
                routes=((target, downstream),),
            ),
        ),
        ((route.endpoint, 1),),
        variant=adaptive,
    )


# Time constants scaled down so each scenario plays out within a phase of a few seconds. One
# half-open call decides: with more, a breaker opened by the hang phase rarely closes during
# the 50 % error phase, which then has too few calls to measure retries on.
QUICK_SERVICE: Final = ServiceSettings(
    deadline_s=1.0,
    breaker_window_s=3,
    breaker_minimum_calls=10,
    breaker_open_s=1.0,
    breaker_open_max_s=2.0,
    breaker_half_open_calls=1,
    budget_min_per_second=1.0,
    budget_window_s=2,
)
QUICK_SHAPE: Final = Shape(
    seconds={
        "baseline": 6,
        "slow": 9,
        "hang": 8,
        "errors": 7,
        "refused": 5,
        "throttled": 5,
        "spike": 7,
        "impatient": 5,
        "idle-close": 5,
        "streams": 5,
        "goaway": 4,
        "malformed": 3,
        # Starts with the breaker malformed opened: it must outlast BREAKER__OPEN_DURATION_MAX
        # and one probe's retries, or no verdict lands inside it and nothing is counted.
        "truncated": 5,
        "reset-stream": 3,
        "bad-head": 3,
        "dead": 3,
        "recovered": 4,
        "tail": 6,
        "adaptive": 6,
    },
    base_users=10,
    slow_users=60,
    spike_users=100,
    healthy_latency_ms=10,
    slow_items_ms=300,
    slow_prices_ms=800,
    spike_latency_ms=200,
    impatient_latency_ms=400,
    throttle_retry_after_s=2,
    idle_close_ms=100,
    goaway_after_requests=20,
)

DEFAULT_SERVICE: Final = ServiceSettings()  # exactly as the service ships
DEFAULT_SHAPE: Final = Shape(
    seconds={
        "baseline": 25,
        "slow": 35,
        "hang": 40,
        "errors": 30,
        "refused": 20,
        "throttled": 20,
        "spike": 35,
        "impatient": 20,
        "idle-close": 20,
        "streams": 20,
        "goaway": 20,
        "malformed": 15,
        "truncated": 15,
        "reset-stream": 15,
        "bad-head": 15,
        "dead": 15,
        "recovered": 20,
        "tail": 20,
        "adaptive": 25,
    },
    base_users=10,
    slow_users=60,
    spike_users=100,
    healthy_latency_ms=10,
    slow_items_ms=1000,
    slow_prices_ms=2500,
    spike_latency_ms=200,
    impatient_latency_ms=1000,
    throttle_retry_after_s=6,
    idle_close_ms=100,
    goaway_after_requests=50,
    tail_latency_ms=2000,
)


def make_profile(
    name: str,
    limit_overrides: Mapping[str, float] | None = None,
    *,
    http2: bool = False,
    variants: bool = True,
) -> Profile:
    """``http2``: the downstream is reached over TLS, where the service speaks HTTP/2;
    ``variants``: with the phases that need a second service process (``Variant``)."""
    shapes = {"quick": (QUICK_SHAPE, QUICK_SERVICE), "default": (DEFAULT_SHAPE, DEFAULT_SERVICE)}
    if name not in shapes:
        raise ValueError(f"unknown profile {name!r}; choose from {sorted(shapes)}")
    shape, service = shapes[name]
    limits = Limits().with_overrides(limit_overrides or {})
    phases = build_phases(shape, service, limits, http2=http2, variants=variants)
    return Profile(name, phases, service, limits)


PROFILE_NAMES: Final = ("quick", "default")


def parse_limit_overrides(text: str | None) -> dict[str, float]:
    """The ``LOADTEST_LIMITS`` JSON object the runner hands to locust (``{}`` when unset)."""
    if not text:
        return {}
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError("LOADTEST_LIMITS must be a JSON object")
    return {str(k): float(v) for k, v in loaded.items()}
