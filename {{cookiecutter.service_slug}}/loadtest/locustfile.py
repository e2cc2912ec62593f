"""The locust side of ``python -m loadtest``: users, the phase shape, fault switching, the gate.

``python -m loadtest`` runs this file headless in a subprocess. To spread the users over several
machines, start the fault server and the service yourself and run, from the project root::

    python -m locust -f loadtest/locustfile.py --headless --master --expect-workers 2 \\
        --host http://SERVICE:8000 --csv loadtest/reports/manual/locust --html ...
    python -m locust -f loadtest/locustfile.py --worker --master-host MASTER   # on each worker

Settings come from the environment (only the master needs them):
``LOADTEST_PROFILE`` (quick|default), ``LOADTEST_HTTP2`` (1: the downstream is reached over TLS,
so the HTTP/2 phases run), ``LOADTEST_FAULT_ADMIN`` (the fault server's admin URL),
``LOADTEST_REPORT_DIR`` (where verdict.json goes), ``LOADTEST_SERVICE_PID`` (for RSS and fds;
without it they are read from the service's /metrics), ``LOADTEST_LIMITS`` (JSON overrides),
``LOADTEST_STOP_FILE`` (created by the runner to end the run early), ``LOADTEST_UNJUDGED`` (SLO
checks this run cannot judge, see ``cluster``), ``LOADTEST_VARIANTS`` (JSON: per
``profiles.Variant``, the URL of the process the runner started for it; without it the phases
that need one do not run).

Only the master (or the single local runner) runs ``tick()``, switches faults and judges: the
fault switch and the snapshots run in a greenlet so ``tick()`` never blocks, and workers learn
the phase from a message, so every request is named after the phase it ran in.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import os
import random
import re
import time
from pathlib import Path
from typing import Any, Final

import gevent
from locust import FastHttpUser, LoadTestShape, User, between, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtest import probes, saturation
from loadtest.client_timeline import Totals, per_second
from loadtest.cluster import unjudged
from loadtest.gate import (
    RequestRow,
    RunData,
    Snapshot,
    Window,
    evaluate,
    format_table,
    passed,
    verdict_document,
    write_verdict,
)
from loadtest.generators import GeneratorMonitor, report_cpu_demand
from loadtest.naming import (
    BREAKER_OPEN,
    HEALTHZ,
    breaker_label,
    classify,
    parse_name,
    request_name,
)
from loadtest.profiles import (
    IMPATIENT_TIMEOUT_S,
    SPAWN_RATE,
    Phase,
    full_mix,
    make_profile,
    parse_limit_overrides,
)
from loadtest.routes import ROUTES

log = logging.getLogger("loadtest")

PHASE_MESSAGE: Final = "loadtest_phase"
ITEM_IDS: Final = 1000
#: How long the gate waits for a fault switch or a snapshot still running when the run ends.
SWITCH_JOIN_TIMEOUT_S: Final = 10.0
CLIENT_SAMPLE_S: Final = 1.0
#: Workers report every 3 s: a line waits for new counts, but at most this long.
CLIENT_LINE_MAX_S: Final = 5.0

VARIANT_URLS: Final[dict[str, str]] = json.loads(os.environ.get("LOADTEST_VARIANTS") or "{}")
PROFILE: Final = unjudged(
    make_profile(
        os.environ.get("LOADTEST_PROFILE", "default"),
        parse_limit_overrides(os.environ.get("LOADTEST_LIMITS")),
        http2=os.environ.get("LOADTEST_HTTP2") == "1",
        variants=bool(VARIANT_URLS),
    ),
    os.environ.get("LOADTEST_UNJUDGED"),
)
FAULT_ADMIN: Final = os.environ.get("LOADTEST_FAULT_ADMIN")
REPORT_DIR: Final = Path(os.environ.get("LOADTEST_REPORT_DIR", "loadtest/reports/manual"))
_pid = os.environ.get("LOADTEST_SERVICE_PID")
SERVICE_PID: Final = int(_pid) if _pid else None
_stop = os.environ.get("LOADTEST_STOP_FILE")
#: The runner creates this file to end the run early (see ``__main__.stop_locust``).
STOP_FILE: Final = Path(_stop) if _stop else None

#: The phase new requests are named after, and its route mix: set by tick() locally, by a
#: message on workers.
current_phase = "0-start"
current_mix: tuple[tuple[str, int], ...] = full_mix(ROUTES)
#: "" (the host), or the URL of the phase's variant process (profiles.Variant).
current_base = ""
#: Per (phase, downstream), when this process first received a breaker_open from it (see
#: naming.breaker_label).
breaker_open_seen: dict[tuple[str, str | None], float] = {}
PATHS: Final = {route.endpoint: route.path for route in ROUTES} | {HEALTHZ: "/healthz"}
#: Per endpoint, the downstreams it degrades without: their failures fail the route.
OPTIONAL: Final = {route.endpoint: route.degrades_without for route in ROUTES}
PLACEHOLDER: Final = re.compile(r"\{[^}]*\}")


# -- users --------------------------------------------------------------------------------------


class ServiceUser(FastHttpUser):
    """Calls the routes of ``loadtest/routes.py``. Every request has a timeout: a hung service
    never hangs us."""

    wait_time = between(0.1, 0.5)
    connection_timeout = 5.0
    network_timeout = 10.0
    max_retries = 0
    impatient = False

    def on_start(self) -> None:
        """Think once before the first call, as between calls. Locust starts a phase's new
        users in one batch: in step, their first calls queue together, are shed together after
        max_wait, and come back together, and each wave's burst was measured as latency."""
        self.wait()  # type: ignore[no-untyped-call]  # locust's User.wait is untyped

    @task
    def call_a_route(self) -> None:
        phase, mix, base = current_phase, current_mix, current_base
        endpoints, weights = zip(*mix, strict=True)
        endpoint = random.choices(endpoints, weights)[0]
        path = PLACEHOLDER.sub(str(random.randint(1, ITEM_IDS)), PATHS[endpoint])
        self.call(phase, endpoint, base + path)

    def call(self, phase: str, endpoint: str, path: str) -> None:
        with self.client.get(
            path, name=request_name(phase, endpoint, ""), catch_response=True
        ) as response:
            headers = {k.lower(): v for k, v in (response.headers or {}).items()}
            error = getattr(response, "error", None)
            status = response.status_code or 0
            outcome = classify(
                status,
                headers,
                (response.content or b"") if status else b"",
                optional=OPTIONAL.get(endpoint, ()),
                impatient=self.impatient,
                timed_out=_is_timeout(error),
            )
            label = outcome.label
            if label == BREAKER_OPEN:
                started = float(response.request_meta["start_time"])
                seen = (phase, outcome.downstream)
                label = breaker_label(label, started, breaker_open_seen.get(seen))
                breaker_open_seen.setdefault(seen, time.time())
            response.request_meta["name"] = request_name(phase, endpoint, label)
            if outcome.success:
                response.success()
            else:
                response.failure(outcome.label if status else f"no response: {error!r}")


class ImpatientUser(ServiceUser):
    """Gives up on any request slower than IMPATIENT_TIMEOUT_S and closes its connection."""

    network_timeout = IMPATIENT_TIMEOUT_S
    impatient = True


def _is_timeout(error: object) -> bool:
    return isinstance(error, TimeoutError | gevent.Timeout) or "timed out" in str(error).lower()


# -- phases -------------------------------------------------------------------------------------


class PhaseController:
    """Master side: enters phases, switches faults, and takes the snapshots the gate reads."""

    def __init__(self, service_url: str) -> None:
        self.service_url = service_url
        self.current: Phase | None = None
        self.windows: dict[str, Window] = {}
        self.starts: dict[str, float] = {}
        self.ended = False  # tick() ran past the last phase
        self._switch: Any = None  # the latest fault-switch greenlet

    def enter(self, phase: Phase, environment: Environment) -> None:
        """Called from tick(): name requests after ``phase`` now, switch faults in a greenlet."""
        previous, self.current = self.current, phase
        self.starts[phase.name] = time.time()
        self.windows[phase.name] = Window()
        if environment.runner is not None:  # to every process that runs users, this one too
            mix = [list(pair) for pair in phase.mix]
            base = VARIANT_URLS.get(phase.variant.name, "") if phase.variant else ""
            environment.runner.send_message(
                PHASE_MESSAGE, {"name": phase.name, "mix": mix, "base": base}
            )
        self._switch = gevent.spawn(self._switch_faults, previous, phase, self._switch)
        log.info("phase %s: %s (%d users)", phase.name, phase.title, phase.users)

    def _switch_faults(self, previous: Phase | None, phase: Phase, before: Any) -> None:
        if before is not None:
            before.join()  # switches apply in order even when the service answers slowly
        if previous is not None:
            self.windows[previous.name].end = self.snapshot(previous)
        if FAULT_ADMIN:
            try:
                probes.apply_faults(FAULT_ADMIN, phase.faults)
            except OSError as error:
                log.error("phase %s: could not set faults: %s", phase.name, error)
        self.windows[phase.name].start = self.snapshot(phase)

    def snapshot(self, phase: Phase | None = None) -> Snapshot:
        """The service's, or for a phase run on a variant that process's (pid: from /metrics)."""
        variant = None if phase is None else phase.variant
        if variant is not None and variant.name in VARIANT_URLS:
            url, log_path = VARIANT_URLS[variant.name], REPORT_DIR / variant.log_name
            return probes.snapshot(url, FAULT_ADMIN, None, log_path)
        return probes.snapshot(
            self.service_url, FAULT_ADMIN, SERVICE_PID, REPORT_DIR / probes.SERVICE_LOG
        )

    def with_variants(self, snap: Snapshot) -> Snapshot:
        """``snap`` with the variants' downstreams too (``catalog (hedged)``), so the after-run
        checks (drained, pool empty, no leak) judge those processes as well; none if one is
        missing."""
        views = dict(snap.downstreams or {})
        for name, url in VARIANT_URLS.items():
            extra = probes.downstream_views(url)
            if extra is None or not views:
                return dataclasses.replace(snap, downstreams=None)
            views.update({f"{downstream} ({name})": v for downstream, v in extra.items()})
        return dataclasses.replace(snap, downstreams=views)

    def close(self) -> None:
        """The run is over: let the last switch finish and close the last phase's window."""
        if self._switch is not None:
            self._switch.join(timeout=SWITCH_JOIN_TIMEOUT_S)
        if self.current is not None and self.ended:
            self.windows[self.current.name].end = self.snapshot(self.current)

    def drained_snapshot(self, grace_s: float) -> Snapshot:
        """Poll until no call is in flight or queued (at most ``grace_s``), then snapshot."""
        give_up = time.monotonic() + grace_s
        while True:
            snap = self.with_variants(self.snapshot())
            if time.monotonic() >= give_up or _drained(snap):
                return snap
            gevent.sleep(0.2)


def _drained(snap: Snapshot) -> bool:
    views = snap.downstreams
    if not views:
        return False
    return all(
        view.get("in_flight") == 0
        and view.get("queued") == 0
        and view.get("pool", {}).get("active") == 0
        for view in views.values()
    )


controller: PhaseController | None = None


class ClientRecorder:
    """Master side: appends what the clients saw each second to ``client_timeline.jsonl``."""

    def __init__(self, environment: Environment, path: Path) -> None:
        self.environment = environment
        self.path = path

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        previous = self.totals()
        with self.path.open("a", encoding="utf-8") as timeline:
            while True:
                gevent.sleep(CLIENT_SAMPLE_S)
                now = self.totals()
                unchanged = now.requests == previous.requests
                if unchanged and now.t - previous.t < CLIENT_LINE_MAX_S:
                    continue  # a distributed run between worker reports
                timeline.write(json.dumps(per_second(previous, now)) + "\n")
                timeline.flush()
                previous = now

    def totals(self) -> Totals:
        stats = self.environment.stats
        sheds = 0
        for entry in stats.entries.values():
            parsed = parse_name(entry.name)
            if parsed is not None and parsed.is_shed:
                sheds += entry.num_requests
        runner = self.environment.runner
        return Totals(
            t=time.time(),
            users=runner.user_count if runner is not None else 0,
            requests=stats.total.num_requests,
            failures=stats.total.num_failures,
            sheds=sheds,
            response_times=dict(stats.total.response_times),
        )


recorder: Any = None  # the ClientRecorder greenlet
monitor: GeneratorMonitor | None = None  # master side: what each load generator delivered


class PhaseShape(LoadTestShape):
    """Runs the profile's phases back to back, then ends the run."""

    def tick(self) -> tuple[int, float, list[type[User]] | None] | None:
        assert controller is not None
        if STOP_FILE is not None and STOP_FILE.exists():
            log.warning("stop requested: ending the run before its last phase")
            return None  # controller.ended stays False: the gate reports the run interrupted
        phase = PROFILE.phase_at(self.get_run_time())  # type: ignore[no-untyped-call]
        if phase is None:
            controller.ended = True
            return None
        if controller.current is not phase:
            assert self.runner is not None
            if monitor is not None:
                monitor.start()
            controller.enter(phase, self.runner.environment)
        user_class: type[User] = ImpatientUser if phase.impatient else ServiceUser
        return phase.users, SPAWN_RATE, [user_class]


# -- wiring and the gate ------------------------------------------------------------------------


def _on_phase_message(environment: Environment, msg: Any, **kwargs: Any) -> None:
    global current_phase, current_mix, current_base
    current_phase = str(msg.data["name"])
    current_mix = tuple((str(endpoint), int(weight)) for endpoint, weight in msg.data["mix"])
    current_base = str(msg.data.get("base", ""))


@events.init.add_listener  # type: ignore[untyped-decorator]  # locust's EventHook is untyped
def _on_init(environment: Environment, **kwargs: Any) -> None:
    global controller, recorder, monitor
    # A latency measured here includes this process's own pauses: unfrozen, its full garbage
    # collections took 105-119 ms in the quick profile, reported as the service's p99.
    gc.freeze()
    runner = environment.runner
    if runner is None:
        return
    if not isinstance(runner, MasterRunner):  # this process runs users
        runner.register_message(PHASE_MESSAGE, _on_phase_message)
    if isinstance(runner, WorkerRunner):
        report_cpu_demand(runner)
    if not isinstance(runner, WorkerRunner):
        controller = PhaseController(str(environment.host or "").rstrip("/"))
        timeline = REPORT_DIR / "client_timeline.jsonl"
        recorder = gevent.spawn(ClientRecorder(environment, timeline).run)
        monitor = GeneratorMonitor(environment)


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def _gate(environment: Environment, **kwargs: Any) -> None:
    if isinstance(environment.runner, WorkerRunner) or controller is None:
        return  # workers hold no aggregated stats: only the master judges
    if recorder is not None:
        recorder.kill(block=False)
    loads = monitor.stop() if monitor is not None else []
    controller.close()
    grace = PROFILE.service.deadline_s + PROFILE.limits.drain_grace_s
    final = controller.drained_snapshot(grace) if controller.ended else None
    rows = [
        RequestRow(entry.name, entry.num_requests, entry.num_failures, dict(entry.response_times))
        for entry in environment.stats.entries.values()
    ]
    data = RunData(rows, controller.windows, final, completed=controller.ended)
    verdicts = evaluate(PROFILE, data)
    document = verdict_document(PROFILE, verdicts, data, controller.starts)
    ok = passed(verdicts)
    expected = monitor.expected() if monitor is not None else 1
    document.update(saturation.document_fields(loads, expected, ok))
    document["passed"] = document["verdict"] == saturation.PASS
    write_verdict(REPORT_DIR / "verdict.json", document)
    log.info("SLO verdict (%s):\n%s", "pass" if ok else "FAIL", format_table(verdicts))
    log.info("load generators:\n%s", saturation.format_generators(loads))
    for problem in document["generators"]["problems"]:
        log.error("run INVALID, the load generators did not deliver: %s", problem)
    environment.process_exit_code = saturation.EXIT_STATUS[document["verdict"]]
