"""A cluster run cannot read the service's log: it names that check, and only that one goes."""

from __future__ import annotations

from loadtest.cluster import unjudged
from loadtest.profiles import make_profile


def test_only_the_named_checks_are_left_out() -> None:
    profile = make_profile("quick")
    every = {slo.check for phase in profile.phases for slo in phase.slos}
    kept = unjudged(profile, "log_rate_max, ")
    assert "log_rate_max" in every
    assert {slo.check for phase in kept.phases for slo in phase.slos} == every - {"log_rate_max"}
    assert [phase.name for phase in kept.phases] == [phase.name for phase in profile.phases]
    assert unjudged(profile, None) is profile
    assert unjudged(profile, "") is profile
