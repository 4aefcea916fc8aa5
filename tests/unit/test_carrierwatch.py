"""The reference cloud's per-PLMN rule (board/virtual/cloud/carrierwatch.py, docs/protocol.md
3.4): one router's report excludes a carrier for that router; several routers' reports
take it away from everyone; nothing is moved back when it returns."""

from __future__ import annotations

from board.virtual.cloud.carrierwatch import DOWN_REPORTERS, REPORT_TTL_S, CarrierWatch

B = "44020"


def down_event(cause: str = "blackhole") -> dict[str, object]:
    return {"state": "no_service", "plmn": B, "evidence": {"cause": cause}}


def test_one_router_excludes_the_carrier_only_for_itself() -> None:
    watch = CarrierWatch()
    watch.on_health("rtr-1", down_event(), now=0.0)
    assert watch.down(1.0) == set()
    assert watch.excluded_for("rtr-1", [B], 1.0) == {B}
    assert watch.excluded_for("rtr-2", [], 1.0) == set()


def test_several_routers_take_the_carrier_away_from_everyone() -> None:
    watch = CarrierWatch()
    for i in range(DOWN_REPORTERS):
        watch.on_health(f"rtr-{i}", down_event("not_registered"), now=float(i))
    assert watch.down(10.0) == {B}
    assert watch.excluded_for("rtr-99", [], 10.0) == {B}


def test_a_router_serving_on_the_carrier_withdraws_its_report() -> None:
    watch = CarrierWatch()
    for i in range(DOWN_REPORTERS):
        watch.on_health(f"rtr-{i}", down_event(), now=0.0)
    watch.on_health("rtr-0", {"state": "ok", "plmn": B, "evidence": {}}, now=5.0)
    assert watch.down(6.0) == set()


def test_reports_age_out_so_a_returning_carrier_is_offered_again() -> None:
    watch = CarrierWatch()
    for i in range(DOWN_REPORTERS):
        watch.on_health(f"rtr-{i}", down_event(), now=0.0)
    assert watch.down(REPORT_TTL_S - 1) == {B}
    assert watch.down(REPORT_TTL_S) == set()


def test_causes_that_are_not_the_carrier_report_nothing() -> None:
    watch = CarrierWatch()
    for i in range(DOWN_REPORTERS):
        watch.on_health(f"rtr-{i}", down_event("registration_rejected: EMM cause #3"), now=0.0)
        watch.on_health(f"rtr-{i}", {"state": "congested", "plmn": B, "evidence": {}}, now=0.0)
        watch.on_health(f"rtr-{i}", {"state": "no_service", "plmn": None, "evidence": {"cause": "blackhole"}}, 0.0)
    assert watch.down(1.0) == set()
