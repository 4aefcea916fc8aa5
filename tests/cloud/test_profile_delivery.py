"""A signed profile with a bad field, sealed with the lab's sealing and delivered through the
real broker (issue 20, finding 2): refused when opened, reported upstream naming the field
and never its value, no Ki or OPc in any log line, and the next good profile is accepted.

The profile is genuinely signed by the platform key and sealed to the device: the
signature is not what is wrong, the content is (a non-ASCII ICCID used to reach
``AT+VSIMLOAD`` and leak both keys through a ``UnicodeEncodeError``'s repr).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cloud import sealing
from agent.cloud.link import CloudLink
from agent.cloud.profilecheck import ProfileFieldError
from agent.logs import TRACE
from agent.sim import Plan
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import Broker, device_config, run
from tests.cloud.test_link import errors, until
from tests.cloud.test_sealed_delivery import EvilCloud


def resealed(**changes: Any) -> Callable[[EvilCloud, dict[str, Any]], dict[str, Any]]:
    """A mutation: the assigned SIM's own profile (its real keys) with ``changes``, signed
    and sealed the way the platform does."""
    def mutate(cloud: EvilCloud, reply: dict[str, Any]) -> dict[str, Any]:
        env = reply["envelope"]
        profile = cloud.profile(cloud.swaps[reply["assignment_id"]]["iccid"])
        fields = {k: (v(profile) if callable(v) else v) for k, v in changes.items()}
        device_public = sealing.load_public_x25519(cloud.device_keys_dir / env["device"] / "sealing.pub")
        envelope = sealing.seal(dataclasses.replace(profile, **fields), device_id=env["device"],
                                device_public=device_public, platform_key=cloud.platform_key,
                                assignment_id=env["assignment_id"], seq=env["seq"], issued_at=env["issued_at"],
                                expires_at=env["expires_at"])
        return {**reply, "envelope": envelope}
    return mutate


def _non_ascii(profile: Any) -> str:
    return profile.iccid[:-2] + "\u00e9" + profile.iccid[-1]


def _luhn_broken(profile: Any) -> str:
    return profile.iccid[:-1] + str((int(profile.iccid[-1]) + 1) % 10)


CASES = [
    ("iccid", {"iccid": _non_ascii}),
    ("iccid", {"iccid": _luhn_broken}),
    ("apn", {"apn": 'internet","","AT+CFUN=0'}),
    ("plmn", {"plmn": "440\u00e910"}),
    ("plan.cap_bytes", {"plan": Plan(name="5GB-month", cap_bytes="lots", window="month", throttle_kbps=128)}),
]


@pytest.mark.parametrize(("field", "changes"), CASES, ids=[f"{f}-{i}" for i, (f, _) in enumerate(CASES)])
def test_a_profile_with_a_bad_field_is_refused_reported_and_leaks_nothing(
        broker: Broker, pki: LabPki, make_cloud: Callable[..., ReferenceCloud], pool_data: dict[str, Any],
        tmp_path: Path, caplog: pytest.LogCaptureFixture, field: str, changes: dict[str, Any]) -> None:
    caplog.set_level(TRACE)
    cloud = make_cloud(cls=EvilCloud)
    assert isinstance(cloud, EvilCloud)
    cloud.mutate = resealed(**changes)

    async def body() -> None:
        link = CloudLink(device_config(pki, broker), state_dir=tmp_path / "agent")
        await link.start()
        try:
            with pytest.raises(ProfileFieldError) as err:
                await link.request_assignment("boot", timeout=10)
            assert err.value.field == field and err.value.reason == "profile_field"
            await until(lambda: any(e["reason"] == "profile_field" for e in errors(cloud)))
            cloud.mutate = None
            good = await link.request_assignment("throttled", timeout=10)
            assert good.seq > 1 and link.connected  # the device goes on serving
        finally:
            await link.stop()
    run(body())
    event = next(e for e in errors(cloud) if e["reason"] == "profile_field")
    assert f"'{field}'" in event["detail"] and event["assignment_id"].startswith("a-dev-a-")
    bad_values = [str(v) for v in changes.values() if isinstance(v, str)] + ["\u00e9"]
    shown = caplog.text + "".join(str(e) for e in cloud.events())
    assert not any(v in event["detail"] for v in bad_values)
    for sim in [pool_data["seed"], *pool_data["sims"]]:
        for key in (sim["ki"], sim["opc"]):
            assert key.lower() not in shown.lower(), "a SIM key reached a log line or an event"
