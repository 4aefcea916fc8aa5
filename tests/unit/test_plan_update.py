"""Plan updates and the durable allowance (issue 22): signed, bounded, versioned,
idempotent; a top-up for another SIM, a replayed or an unsigned update is refused whole;
a restart at 90 % of a cap keeps the allowance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.clock import FakeClock
from agent.cloud import platformsig
from agent.errors import PlanError, ProtocolError
from agent.plans.tracker import Allowance
from agent.plans.update import parse_update
from board.virtual.cloud import signer
from board.virtual.cloud.plans import GB, MB, plan

KEY = Ed25519PrivateKey.from_private_bytes(bytes.fromhex("22" * 32))
ICCID, OTHER = "8981100000001000019", "8981100000001000027"
T0 = 1_767_225_600.0 + 10 * 86400  # 2026-01-11T09:00 JST
SIM = {"iccid": ICCID, "imsi": "440100000100001", "assignment_id": "a-1",
       "plan": {**plan("100MB-3days"), "remaining": {"72h": 100 * MB}}}
MONTHLY = {"name": "1GB+72h", "tz": "+09:00", "rules": [
    {"id": "month", "window": "month", "cap_bytes": GB, "throttle_kbps": 128},
    {"id": "72h", "window": "rolling", "hours": 72, "cap_bytes": 100 * MB, "throttle_kbps": 128}]}


def update(**fields: Any) -> dict[str, Any]:
    body = {"iccid": ICCID, "update_id": "u-1", "version": 1,
            "credits": [{"id": "t-1", "kind": "topup", "bytes": 500 * MB, "bought": T0}], **fields}
    return signer.sign_plan_update(body, device_id="dev-a", key=KEY)


def received(body: dict[str, Any]) -> Any:
    """What the inbox does: the signature first, then the fields."""
    return parse_update(platformsig.verify_plan_update(body, device_id="dev-a", public=KEY.public_key()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(epoch=T0)


def use(tracker: Allowance, nbytes: int, clock: FakeClock, iccid: str = ICCID) -> None:
    t = clock.wall()
    tracker.ledger.add(iccid, "2026-01-11", t, t + 1, nbytes, 0)
    tracker.ledger.commit(tracker.ledger.seq + 1)


def test_a_restart_at_90_percent_keeps_the_allowance(tmp_path: Path, clock: FakeClock) -> None:
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(SIM)
    use(tracker, 90 * MB, clock)
    assert tracker.status(SIM)[0].remaining == 10 * MB
    restarted = Allowance(tmp_path, clock)
    restarted.on_sim(SIM)  # the same assignment again: its number is not taken twice
    assert restarted.status(SIM)[0].remaining == 10 * MB


def test_the_assignments_remaining_counts_other_routers_once(tmp_path: Path, clock: FakeClock) -> None:
    tracker = Allowance(tmp_path, clock)
    facts = {**SIM, "plan": {**SIM["plan"], "remaining": {"72h": 30 * MB}}}
    tracker.on_sim(facts)
    use(tracker, 5 * MB, clock)
    assert tracker.status(facts)[0].used == 75 * MB
    clock.advance(73 * 3600)  # the others' bytes have aged out of the 72 hours
    assert tracker.status(facts)[0].used == 0


def test_a_topup_during_a_72_hour_throttle_lifts_the_month_rule_not_the_72_hour_one(
        tmp_path: Path, clock: FakeClock) -> None:
    facts = {**SIM, "plan": MONTHLY}
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(facts)
    use(tracker, GB + 20 * MB, clock)
    month, rolling = tracker.status(facts)
    assert month.exceeded and rolling.exceeded
    assert tracker.apply(received(update()), facts) == "applied"
    month, rolling = tracker.status(facts)
    assert not month.exceeded and month.cap == GB + 500 * MB
    assert rolling.exceeded and rolling.cap == 100 * MB


def test_an_update_is_idempotent_versioned_and_durable(tmp_path: Path, clock: FakeClock) -> None:
    facts = {**SIM, "plan": MONTHLY}
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(facts)
    first = received(update())
    assert tracker.apply(first, facts) == "applied"
    assert tracker.apply(first, facts) == "duplicate"
    assert tracker.status(facts)[0].cap == GB + 500 * MB  # not twice
    with pytest.raises(PlanError) as replayed:
        tracker.apply(received(update(update_id="u-0", version=1)), facts)
    assert replayed.value.reason == "replay" and replayed.value.field == "plan_update.version"
    reopened = Allowance(tmp_path, clock)
    assert reopened.status(facts)[0].cap == GB + 500 * MB
    assert reopened.apply(first, facts) == "duplicate"


def test_a_topup_for_another_sim_is_refused_and_changes_nothing(tmp_path: Path, clock: FakeClock) -> None:
    facts = {**SIM, "plan": MONTHLY}
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(facts)
    with pytest.raises(PlanError) as other:
        tracker.apply(received(update(iccid=OTHER)), facts)
    assert other.value.reason == "wrong_sim" and other.value.field == "plan_update.iccid"
    assert tracker.status(facts)[0].cap == GB


def test_a_fourth_addon_in_a_month_is_refused_whole(tmp_path: Path, clock: FakeClock) -> None:
    facts = {**SIM, "plan": MONTHLY}
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(facts)
    addons = [{"id": f"a-{i}", "kind": "addon", "bytes": 10 * GB, "bought": T0 + i} for i in range(4)]
    with pytest.raises(PlanError) as four:
        tracker.apply(received(update(credits=addons)), facts)
    assert four.value.field == "plan_update.credits"
    assert tracker.apply(received(update(credits=addons[:3])), facts) == "applied"
    assert tracker.status(facts)[0].cap == GB + 30 * GB


def test_unsigned_badly_signed_and_other_devices_updates_are_refused() -> None:
    body = update()
    with pytest.raises(ProtocolError) as unsigned:
        received({k: v for k, v in body.items() if k != "sig"})
    assert unsigned.value.reason == "signature"
    with pytest.raises(ProtocolError) as tampered:
        received({**body, "credits": [dict(body["credits"][0], bytes=50 * GB)]})
    assert tampered.value.reason == "signature"
    policy_sig = signer.sign_policy({k: v for k, v in body.items() if k != "sig"}, device_id="dev-a", key=KEY)
    with pytest.raises(ProtocolError) as as_policy:  # a policy's signature is not a plan update's
        received(policy_sig)
    assert as_policy.value.reason == "signature"
    with pytest.raises(ProtocolError) as elsewhere:
        received(signer.sign_plan_update({k: v for k, v in body.items() if k not in ("sig", "device")},
                                         device_id="dev-b", key=KEY))
    assert elsewhere.value.reason == "wrong_device"


def test_a_corrected_remaining_replaces_the_others_count(tmp_path: Path, clock: FakeClock) -> None:
    facts = {**SIM, "plan": MONTHLY}
    tracker = Allowance(tmp_path, clock)
    tracker.on_sim(facts)
    use(tracker, 100 * MB, clock)
    fixed = received(update(credits=None, remaining={"month": 700 * MB}, as_of=clock.wall() + 1))
    tracker.apply(fixed, facts)
    assert tracker.status(facts)[0].remaining == 700 * MB
