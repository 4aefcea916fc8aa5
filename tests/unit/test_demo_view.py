"""``make run``'s view is total over every status and event shape the agent and cloud can write.

The view once fell over 30 s into every ``make run`` (issue 19): after a swap the health
block's ``state`` is ``None`` and the line formatted it with ``:10``. These properties feed
it any JSON where the status file, the lab's usage and the cloud's events have fields, so
a field that is absent, ``None``, of another type or hostile text never ends the demo.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from board.virtual.lab import demo

ICCID = "8981100000002200014"

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                    st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field as the agent writes it, or absent/None/anything else."""
    return st.one_of(value, json_values)


radio = st.fixed_dictionaries({}, optional={"rsrp_dbm": maybe(st.floats(-140, -44))})
health = st.fixed_dictionaries({}, optional={"state": maybe(st.sampled_from(["ok", "throttled", "congested"])),
                                             "radio": maybe(radio)})
sim = st.fixed_dictionaries({}, optional={"iccid": maybe(st.just(ICCID)), "slot": json_values})
status_shapes = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "state": maybe(st.sampled_from(["starting", "serving", "swapping", "healing", "failed", "stopped"])),
    "sim": maybe(sim), "health": maybe(health), "error": json_values, "exit_code": json_values}))
usage_shapes = st.one_of(json_values, st.dictionaries(st.just(ICCID), st.fixed_dictionaries({}, optional={
    "carrier": maybe(st.fixed_dictionaries({"up": st.integers(0), "down": st.integers(0)})),
    "cloud": maybe(st.fixed_dictionaries({"up": st.integers(0), "down": st.integers(0)}))})))
data = st.fixed_dictionaries({}, optional={
    "state": maybe(st.sampled_from(["throttled", "ok"])), "kbps": maybe(st.floats(0, 1e6)),
    "iccid": maybe(st.just(ICCID)), "from_iccid": json_values, "to_iccid": json_values,
    "ok": maybe(st.booleans()), "rolled_back": json_values, "detail": json_values, "cause": json_values,
    "break_ms": maybe(st.integers(0, 10**7)), "duration_s": json_values, "mechanism": json_values,
    "evidence": maybe(st.dictionaries(st.sampled_from(["flows", "loss", "mechanism"]), json_values)),
    "phases_ms": maybe(st.dictionaries(st.sampled_from(["switch", "attach", "data"]), json_values))})
event_shapes = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    "kind": maybe(st.sampled_from(["health", "assign/request", "swap", "outage", "usage"])),
    "t": maybe(st.floats(0, 2e9)), "body": maybe(st.fixed_dictionaries({}, optional={
        "reason": json_values, "body": maybe(st.fixed_dictionaries({}, optional={"data": maybe(data)}))}))}))


@settings(max_examples=400, deadline=None)
@given(status=status_shapes, usage=usage_shapes, elapsed=st.floats(0, 1e6), kbps=st.floats(-1e9, 1e9))
def test_status_line_is_one_short_line_for_any_status(status: Any, usage: Any, elapsed: float,
                                                      kbps: float) -> None:
    line = demo.render_status(status, usage, elapsed, kbps)
    assert isinstance(line, str) and "\n" not in line and "\r" not in line
    assert len(line) <= demo.LINE_WIDTH
    assert line.isprintable()


@settings(max_examples=400, deadline=None)
@given(event=event_shapes)
def test_every_event_shape_gives_a_printable_sentence_or_nothing(event: Any) -> None:
    said = demo.sentence(event)
    assert said is None or (isinstance(said, str) and said.isprintable())


def test_the_status_that_crashed_make_run_is_shown() -> None:
    """After a swap the classifier is fresh: health.state is None (the crash of issue 19)."""
    status = {"state": "serving", "sim": {"iccid": ICCID}, "health": {"state": None, "radio": {"rsrp_dbm": None}}}
    usage = {ICCID: {"carrier": {"up": 1, "down": 2_500_000}, "cloud": {"up": 1, "down": 1_000_000}}}
    line = demo.render_status(status, usage, 31.0, 45_400.0)
    assert line.split()[:4] == ["31s", "serving", "SIM", "...0014"]
    assert "45.4 Mbit/s" in line and "carrier     2.5 MB" in line and "cloud     1.0 MB" in line


def test_known_events_read_as_the_story() -> None:
    throttled = {"kind": "health", "t": 0, "body": {"body": {"data": {
        "state": "throttled", "iccid": ICCID, "kbps": 133.2, "mechanism": "policer", "evidence": {"flows": 2}}}}}
    swap = {"kind": "swap", "t": 0, "body": {"body": {"data": {
        "ok": True, "from_iccid": ICCID, "to_iccid": "8981100000002200063", "break_ms": 5900,
        "phases_ms": {"switch": 3000, "attach": 2000, "data": 800}}}}}
    assert "SIM ...0014 throttled at 133 kbps (policer; flows 2); reported to the cloud" in demo.sentence(throttled)
    assert "swapped SIM ...0014 -> ...0063: 5.9 s without data (switch 3.0 s, attach 2.0 s, data 0.8 s)" \
        in demo.sentence(swap)
    assert demo.sentence({"kind": "usage"}) is None


def test_event_tail_leaves_a_half_written_line_for_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    tail = demo.EventTail(path)
    assert tail.new() == []  # the cloud has not written yet
    path.write_text(json.dumps({"kind": "a"}) + "\nnot json\n" + '{"kind": "b"')
    assert tail.new() == [{"kind": "a"}]
    with path.open("a") as f:
        f.write("}\n")
    assert tail.new() == [{"kind": "b"}]
    assert tail.new() == []


def test_usage_table_lists_the_sims_that_carried_traffic() -> None:
    table = demo.usage_table(json.dumps({ICCID: {"carrier": {"up": 5, "down": 7}, "cloud": {"up": 5, "down": 6}},
                                         "8981100000002200022": {"carrier": {"up": 0, "down": 0}}}))
    assert ICCID in table and "8981100000002200022" not in table
    assert demo.usage_table("not json").count("\n") == 2  # the heading only
