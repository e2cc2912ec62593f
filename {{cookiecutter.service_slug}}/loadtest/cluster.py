"""``python -m loadtest.cluster master``: the locust master of deploy/k8s/loadtest, as a Job.

Waits until the service answers ``/readyz`` and the fault server its admin API (their pods start
alongside this one), runs ``python -m locust`` with the options of its ``LOCUST_*`` variables
(the locustfile's gate judges), then prints ``verdict.json``, the CSV files and the HTML report
to the log, because the Job's volume goes with its pod. The exit status is locust's: 0 pass,
1 fail, 3 invalid (a load generator saturated or missing), 2 when something never came up.

``LOADTEST_UNJUDGED`` names SLO checks this run cannot judge, comma-separated: in a cluster the
service's log is in another pod, so ``log_rate_max`` is listed there and read with kubectl.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from loadtest import probes
from loadtest.profiles import Profile

READY_TIMEOUT_S: Final = 300.0
REPORT_FILES: Final = (
    "verdict.json",
    "locust_stats.csv",
    "locust_failures.csv",
    "locust_exceptions.csv",
    "locust.html",
)


def unjudged(profile: Profile, names: str | None) -> Profile:
    """``profile`` without the SLO checks named in ``names`` (comma-separated)."""
    dropped = {name.strip() for name in (names or "").split(",") if name.strip()}
    if not dropped:
        return profile
    phases = tuple(
        dataclasses.replace(phase, slos=tuple(s for s in phase.slos if s.check not in dropped))
        for phase in profile.phases
    )
    return dataclasses.replace(profile, phases=phases)


def print_reports(report_dir: Path) -> None:
    for name in REPORT_FILES:
        path = report_dir / name
        print(f"----- {path} -----", flush=True)
        try:
            sys.stdout.write(path.read_text(errors="replace"))
        except OSError as error:
            print(f"(not written: {error.strerror})")
        print(f"----- end of {path} -----", flush=True)


def master(environ: dict[str, str]) -> int:
    service, admin = environ["LOCUST_HOST"].rstrip("/"), environ["LOADTEST_FAULT_ADMIN"]
    if not probes.wait_for_fault_server(admin, READY_TIMEOUT_S):
        print(f"loadtest: the fault server's admin API {admin} never answered", file=sys.stderr)
        return 2
    if not probes.wait_until_ready(service, READY_TIMEOUT_S):
        print(f"loadtest: {service}/readyz never answered 200", file=sys.stderr)
        return 2
    status = subprocess.run([sys.executable, "-m", "locust"], env=environ, check=False).returncode
    print_reports(Path(environ.get("LOADTEST_REPORT_DIR", ".")))
    print(f"loadtest: locust master exited {status}", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["master"]:
        print("usage: python -m loadtest.cluster master", file=sys.stderr)
        return 2
    return master(dict(os.environ))


if __name__ == "__main__":
    sys.exit(main())
