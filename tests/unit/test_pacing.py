"""agent.cloud.pacing: bounds, widening, the boot spread, persistence, the swap seam."""

from __future__ import annotations

import random
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest

from agent.cloud import pacing
from agent.cloud.pacing import CONNECTION_RATE_EXCEEDED, SERVER_BUSY, Pacer, PacingPolicy
from agent.errors import PacingError, ProtocolError


def policy_body(**knobs: object) -> dict[str, object]:
    return {"version": 7, "swap_below_bytes": 1, "pacing": knobs}


def test_a_sound_policy_is_adopted_and_absent_knobs_take_device_defaults() -> None:
    got = pacing.from_policy(policy_body(reconnect_window_s=400, request_window_s=600), PacingPolicy())
    assert got is not None
    assert (got.version, got.reconnect_window_s, got.request_window_s) == (7, 400, 600)
    assert got.backoff_cap_s == PacingPolicy().backoff_cap_s
    assert pacing.from_policy({"version": 8}, PacingPolicy()) is None  # no pacing: nothing to change


@pytest.mark.parametrize("knobs, field", [
    ({"reconnect_window_s": 0.1}, "reconnect_window_s"),        # the fleet returns as one wall
    ({"backoff_cap_s": 2}, "backoff_cap_s"),                     # a dead platform hammered
    ({"backoff_base_s": 0.0}, "backoff_base_s"),                 # spins on a refused handshake
    ({"backoff_cap_s": 10 ** 7}, "backoff_cap_s"),               # waits forever
    ({"resume_window_s": float("inf")}, "resume_window_s"),      # waits forever
    ({"request_window_s": float("nan")}, "request_window_s"),
    ({"swap_window_s": -1}, "swap_window_s"),
    ({"reconnect_window_s": True}, "reconnect_window_s"),
    ({"request_window_s": "soon"}, "request_window_s"),
    ({"backoff_base_s": 50, "backoff_cap_s": 20}, "backoff_base_s"),
])
def test_a_policy_that_hammers_or_waits_forever_is_refused(knobs: dict[str, object], field: str) -> None:
    with pytest.raises(PacingError) as info:
        pacing.from_policy(policy_body(**knobs), PacingPolicy())
    assert info.value.field == field
    assert isinstance(info.value, ProtocolError) and info.value.reason == "policy_bounds"


def test_pacing_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PacingError):
        pacing.from_policy({"version": 1, "pacing": [1, 2]}, PacingPolicy())


def test_policy_persists_and_a_corrupt_or_out_of_bounds_file_falls_back(tmp_path: Path) -> None:
    local = PacingPolicy(reconnect_window_s=0.2, backoff_base_s=0.1, backoff_cap_s=0.5)  # a test config's values
    assert pacing.load(tmp_path, local) == local
    chosen = PacingPolicy(version=3, reconnect_window_s=350.0, request_window_s=500.0)
    pacing.save(tmp_path, chosen)
    assert (tmp_path / pacing.POLICY_FILE).stat().st_mode & 0o777 == 0o600
    assert pacing.load(tmp_path, local) == chosen
    (tmp_path / pacing.POLICY_FILE).write_text('{"version": 4, "backoff_cap_s": 1}')
    assert pacing.load(tmp_path, local) == local


def test_busy_connack_widens_within_the_cap_and_never_retries_at_once() -> None:
    policy = PacingPolicy(reconnect_window_s=20.0, backoff_base_s=1.0, backoff_cap_s=120.0)
    for seed in range(50):
        p = Pacer(policy, random.Random(seed))
        p.after_drop()  # returning within the reconnect window
        ceilings = []
        for code in (SERVER_BUSY, CONNECTION_RATE_EXCEEDED) * 5:
            ceiling = min(policy.backoff_cap_s, max(2 * p.backoff.ceiling(), policy.reconnect_window_s / 2))
            delay = p.after_refusal(code)
            assert ceiling / 2 <= delay <= ceiling <= policy.backoff_cap_s  # upper half: never at once
            ceilings.append(ceiling)
        assert ceilings[0] == policy.reconnect_window_s / 2  # the first: half the window it returns within
        assert all(b >= min(policy.backoff_cap_s, 2 * a) for a, b in pairwise(ceilings))  # then doubling
        assert ceilings[-1] == policy.backoff_cap_s
        assert p.backoff.ceiling() == 120.0  # a plain failure afterwards continues from the widened ceiling


def test_failures_while_returning_are_spread_over_half_the_window() -> None:
    """Devices that met a broker still restarting must not pile onto its first second."""
    policy = PacingPolicy(reconnect_window_s=400.0, backoff_base_s=1.0, backoff_cap_s=600.0)
    retries = []
    for seed in range(400):
        p = Pacer(policy, random.Random(seed))
        p.after_drop()
        retries.append(p.after_failure())
    assert max(retries) <= 200.0 and sum(1 for r in retries if r > 100) > 150  # uniform over [0, 200]
    lone = Pacer(policy, random.Random(1))
    lone.after_own_pause()  # after its own short pause, a failure is a plain back-off
    assert lone.after_failure() <= 1.0


def test_other_connack_refusals_are_plain_failures() -> None:
    """Not authorized (0x87) is a plain failure: full jitter over [0, 2] (the window's half),
    never the busy answers' upper half. Checked over a fleet of 400 devices' first refusal,
    not one draw: a widened delay is never below 1 s, a plain one is about half the time."""
    policy = PacingPolicy(reconnect_window_s=4.0, backoff_base_s=1.0)
    first = [Pacer(policy, random.Random(seed)).after_refusal(0x87) for seed in range(400)]
    assert all(0 <= d <= 2.0 for d in first)
    assert sum(1 for d in first if d < 1.0) == pytest.approx(200, abs=40)  # the lower half too: no widening
    busy = [Pacer(policy, random.Random(seed)).after_refusal(SERVER_BUSY) for seed in range(400)]
    assert min(busy) >= 1.0  # the widening this refusal must not get, for contrast


def test_retry_after_is_honoured_widened_by_the_streak_and_bounded() -> None:
    policy = PacingPolicy(backoff_base_s=1.0, backoff_cap_s=60.0)
    p = Pacer(policy, random.Random(2))
    delays = [p.retry_after(5.0) for _ in range(8)]
    assert all(5.0 <= d <= 60.0 for d in delays)
    assert max(delays[5:]) > 7.5  # later answers spread wider than [T, 1.5 T]
    assert p.retry_after(3600.0) == 60.0  # asked for more than the cap: the cap
    p.served()
    assert p.retry_after(5.0) <= 7.5


def test_first_request_after_boot_is_spread_over_the_window_and_no_capacity_widens_the_next() -> None:
    policy = PacingPolicy(request_window_s=300.0)
    firsts = []
    for seed in range(400):
        p = Pacer(policy, random.Random(seed))
        firsts.append(p.before_request())
        assert p.before_request() == 0.0  # only the first after boot
    assert 0 <= min(firsts) and max(firsts) <= 300.0
    assert sum(1 for d in firsts if d < 150) == pytest.approx(200, abs=40)  # uniform, not bunched
    p = Pacer(policy, random.Random(1))
    p.before_request()
    p.no_capacity()
    assert p.before_request() >= policy.backoff_base_s


def test_swap_delay_stays_inside_the_swap_window_and_the_commands_window() -> None:
    policy = PacingPolicy(swap_window_s=600.0)
    rng = random.Random(3)
    plain = [pacing.swap_delay(policy, rng) for _ in range(200)]
    assert all(0 <= d <= 600 for d in plain) and max(plain) > 300
    boxed = [pacing.swap_delay(policy, rng, now=1000.0, not_before=1100.0, not_after=1200.0) for _ in range(200)]
    assert all(100 <= d <= 200 for d in boxed)


def test_new_policy_reaches_the_backoff() -> None:
    p = Pacer(PacingPolicy(), random.Random(4))
    p.set_policy(replace(PacingPolicy(), backoff_cap_s=30.0, reconnect_window_s=200.0))
    assert p.backoff.cap == 30.0
    assert all(d <= 200.0 for d in (p.after_drop() for _ in range(100)))


def test_the_protocol_docs_pacing_example_is_a_policy_the_device_accepts() -> None:
    from tests.cloud.test_protocol import doc_examples
    paced = [b for b in doc_examples()["policy"] if "pacing" in b]
    assert paced, "docs/protocol.md 3.8.1 shows a policy with pacing"
    for body in paced:
        assert pacing.from_policy(body, PacingPolicy()) is not None


def test_an_own_pause_returns_quickly_while_a_regions_return_is_spread() -> None:
    policy = PacingPolicy(resume_window_s=600.0, backoff_base_s=2.0)
    p = Pacer(policy, random.Random(6))
    assert all(d <= 2.0 for d in (p.after_own_pause() for _ in range(100)))  # a swap: the device alone
    assert max(p.after_resume() for _ in range(100)) > 300.0  # an outage's end: the region together


def test_unanswered_requests_are_resent_out_of_step_and_bounded() -> None:
    policy = PacingPolicy(backoff_base_s=1.0, backoff_cap_s=60.0)
    fleet = [Pacer(policy, random.Random(seed)) for seed in range(300)]
    first = [p.after_silence() for p in fleet]
    later = [max(p.after_silence() for _ in range(10)) for p in fleet]
    assert max(first) <= 2.0 and len({round(d, 1) for d in first}) > 15  # spread, not one instant
    assert all(d <= 60.0 for d in later) and max(later) > 30.0  # widened, within the cap


@pytest.mark.parametrize("knobs, field, value, detail", [
    ({"swap_window_s": "1h"}, "swap_window_s", "1h", "pacing swap_window_s must be a finite number, got '1h'"),
    ({"reconnect_window_s": 0.5}, "reconnect_window_s", 0.5,
     f"pacing reconnect_window_s=0.5 outside 1..3600 s ({pacing.BOUNDS['reconnect_window_s'].why})"),
    ({"backoff_base_s": 30, "backoff_cap_s": 20}, "backoff_base_s", 30,
     "pacing backoff_base_s=30 exceeds backoff_cap_s=20"),
])
def test_a_refused_policy_names_the_knob_its_value_and_the_bound(knobs: dict[str, object], field: str,
                                                                 value: object, detail: str) -> None:
    """The refusal goes upstream as an error event: the reason, and a detail the platform's
    operator can act on without reading the agent's source."""
    with pytest.raises(PacingError) as info:
        pacing.from_policy(policy_body(**knobs), PacingPolicy())
    assert (info.value.field, info.value.value, str(info.value)) == (field, value, detail)


def test_pacing_that_is_not_an_object_is_refused_naming_the_field() -> None:
    with pytest.raises(PacingError) as info:
        pacing.from_policy({"version": 1, "pacing": "wide"}, PacingPolicy())
    assert (info.value.field, info.value.value, str(info.value)) == ("pacing", "wide",
                                                                      "policy field 'pacing' must be an object")


def test_a_version_that_is_not_a_number_is_refused_as_malformed() -> None:
    with pytest.raises(PacingError) as info:
        pacing.from_policy({"version": "seven", "pacing": {}}, PacingPolicy())
    assert (info.value.field, info.value.value) == ("pacing", None)
    assert str(info.value).startswith("pacing policy malformed: ")


@pytest.mark.parametrize("knobs", [{"backoff_base_s": 0.5}, {"backoff_base_s": 60, "backoff_cap_s": 60},
                                   {"reconnect_window_s": 1, "resume_window_s": 3600, "request_window_s": 0,
                                    "swap_window_s": 21600, "backoff_cap_s": 3600},
                                   {"request_window_s": 1800, "backoff_cap_s": 10}])
def test_every_bound_itself_is_allowed(knobs: dict[str, object]) -> None:
    """The bounds are inclusive, and a base equal to the cap is a back-off that starts at its cap."""
    got = pacing.from_policy(policy_body(**knobs), PacingPolicy())
    assert got is not None and all(getattr(got, k) == v for k, v in knobs.items())


def test_a_policy_without_a_version_keeps_the_current_one_and_unknown_knobs_are_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="agent.cloud.pacing")
    got = pacing.from_policy({"pacing": {"swap_window_s": 90, "jitter_mode": "x", "a_knob": 1}},
                             PacingPolicy(version=5))
    assert got is not None and (got.version, got.swap_window_s) == (5, 90)
    assert "['a_knob', 'jitter_mode']" in caplog.text


def test_a_swap_waits_for_not_before_and_ends_by_not_after_on_the_commands_clock() -> None:
    class Edge(random.Random):
        def __init__(self, f: float):
            super().__init__(0)
            self.f = f

        def random(self) -> float:
            return self.f

    policy = PacingPolicy(swap_window_s=600.0)
    first, last = Edge(0.0), Edge(1.0)
    assert [pacing.swap_delay(policy, r, not_before=50.0) for r in (first, last)] == [50.0, 650.0]  # now = 0
    assert [pacing.swap_delay(policy, r, now=1000.0, not_before=1100.0, not_after=1100.0)
            for r in (first, last)] == [100.0, 100.0]  # no room: at not_before exactly
    assert [pacing.swap_delay(policy, r, now=1000.0, not_before=900.0, not_after=1060.0)
            for r in (first, last)] == [0.0, 60.0]  # not_before passed: from now, until not_after
    assert [pacing.swap_delay(policy, r, now=1000.0, not_after=990.0) for r in (first, last)] == [0.0, 0.0]
