"""Certificate renewal over MQTT in a real mosquitto with TLS and ACLs, against the
reference cloud signing with the lab CA: the daemon's own cloud link carries the
messages, the old certificate stays in use until the new one has connected, and a
renewal interrupted half way resumes instead of starting over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from agent import config as agent_config
from agent.cloud import keystore as ks
from agent.cloud import protocol as proto
from agent.cloud.connect_once import ConnectResult, connect_once
from agent.cloud.link import CloudConfig, CloudLink
from agent.cloud.renewal import CertRenewal, Probe, RenewalResult, attach, key_dir_of
from agent.faces.provision import exitcodes
from board.virtual.cloud.pki import LabPki
from board.virtual.cloud.reference import ReferenceCloud
from tests.cloud.conftest import make_cloud, pool_data, run  # noqa: F401 - fixtures
from tests.provision.conftest import Broker, Line, assert_consistent, sign

DUE_CERT_DAYS = 10
"""The provisioned certificate expires in 10 days: inside the 30-day renewal window."""

ANSWER_S = 10.0
"""Renewal answer timeout in the lab: the cloud signs within milliseconds."""

RESEND_S = 1.0
"""Re-send interval in the lab (production: a minute)."""

LOST_ANSWER_S = 0.5
"""Timeout for the attempt whose answer never comes (the cloud is down)."""


class PowerCut(Exception):
    """Stands for the process dying at the point where it is raised."""


@pytest.fixture
def unit(line: Line, broker: Broker) -> Line:
    """A unit provisioned with a certificate that is due for renewal."""
    line.broker = f"{broker.host}:{broker.port}"
    first = line.run()
    assert first.code == exitcodes.OK, first.stderr
    cert = line.root / "signed.pem"
    cert.write_bytes(sign(line.pki, first.record["csr"].encode(), days=DUE_CERT_DAYS))
    assert line.run("--cert", str(cert)).code == exitcodes.OK
    return line


def lab_cloud(make: Callable[..., ReferenceCloud], pki: LabPki, *, foreign: bool = False) -> ReferenceCloud:
    ca, key = (pki.foreign_ca_cert, pki.foreign_ca_key) if foreign else (pki.ca_cert, pki.ca_key)
    return make(ca_cert_file=ca, ca_key_file=key)


def device_link(unit: Line) -> CloudLink:
    cfg = agent_config.load(unit.config)
    c = cfg.cloud
    return CloudLink(CloudConfig(device_id=cfg.device_id, host=c.host, port=c.port, ca_file=c.ca, cert_file=c.cert,
                                 key_file=c.key, sealing_key_file=c.sealing_key, platform_key_file=c.platform_key,
                                 first_delay_max=0.1, backoff_base=0.1, backoff_cap=0.5,
                                 # The boot spread (uniform over the request window, 10 s by
                                 # default) is not what these tests are about, and reconnects()
                                 # waits 10 s: a draw near the window's end failed it.
                                 request_window=0.0),
                     state_dir=cfg.state_dir)


def with_renewal(unit: Line, body: Callable[[CloudLink, CertRenewal], Coroutine[Any, Any, Any]],
                 probe: Probe | None = None) -> Any:
    """Run ``body`` with the daemon's link up and a renewal wired to it, as the daemon does."""
    async def go() -> Any:
        link = device_link(unit)
        cfg = agent_config.load(unit.config).cloud
        renewal = attach(link, cfg.cert, cfg.host, cfg.port)  # the daemon's wiring (agent.core.supervisor)
        assert renewal is not None
        renewal.resend_s = RESEND_S
        if probe is not None:
            renewal.probe = probe
        await link.start()
        try:
            assert await link.wait_connected(10.0)
            return await body(link, renewal)
        finally:
            await link.stop()

    return run(go())


def reconnects(unit: Line) -> bool:
    """A fresh daemon link (what happens at its next connection) gets in with what is current."""
    async def go() -> bool:
        link = device_link(unit)
        await link.start()
        try:
            return await link.wait_connected(10.0)
        finally:
            await link.stop()
    return run(go())


def cert_requests(cloud: ReferenceCloud) -> list[dict[str, Any]]:
    return [e for e in cloud.events() if e["kind"] == proto.CERT_REQUEST]


def test_renewal_with_a_new_key_switches_only_after_the_new_certificate_connected(
        unit: Line, make_cloud: Callable[..., ReferenceCloud], pki: LabPki) -> None:  # noqa: F811
    cloud = lab_cloud(make_cloud, pki)
    old = unit.current()
    assert old is not None

    async def body(link: CloudLink, renewal: CertRenewal) -> RenewalResult:
        assert renewal.due() and 9 < renewal.days_left() < 10  # type: ignore[operator]
        result = await renewal.renew(timeout=ANSWER_S)
        assert link.connected and link.stats.drops == 0, "the probe must not kick the live session"
        return result

    result = with_renewal(unit, body)
    assert result.outcome == "renewed", result
    new = assert_consistent(unit.key_dir)
    assert new is not None and new.number == result.generation
    assert new.record["tls_key_sha256"] != old.record["tls_key_sha256"]
    assert new.record["sealing_key_sha256"] == old.record["sealing_key_sha256"]
    assert ks.KeyStore(unit.key_dir).pointer(ks.PREVIOUS) == old  # kept as the fallback
    assert ks.KeyStore(unit.key_dir).pointer(ks.PENDING) is None
    assert len(cert_requests(cloud)) == 1
    assert reconnects(unit)
    host, port = unit.broker.split(":")
    still = connect_once(host, int(port), ca=old.file(ks.CA), cert=old.file(ks.CERT), key=old.file(ks.TLS_KEY),
                         client_id="x")
    assert still.ok, "the old certificate is still valid until it expires"


def test_renewal_interrupted_before_the_answer_resumes_with_the_same_key(
        unit: Line, broker: Broker, make_cloud: Callable[..., ReferenceCloud], pki: LabPki) -> None:  # noqa: F811
    old = unit.current()
    assert old is not None

    async def lost(link: CloudLink, renewal: CertRenewal) -> RenewalResult:
        return await renewal.renew(timeout=LOST_ANSWER_S)  # no cloud is running: the request goes unanswered

    assert with_renewal(unit, lost).outcome == "timeout"
    pending = ks.KeyStore(unit.key_dir).pointer(ks.PENDING)
    assert pending is not None and not pending.has(ks.CERT)
    assert unit.current() == old and reconnects(unit), "the old identity stays in use meanwhile"

    cloud = lab_cloud(make_cloud, pki)  # the daemon restarted; the cloud is back

    async def resumed(link: CloudLink, renewal: CertRenewal) -> RenewalResult:
        return await renewal.renew(timeout=ANSWER_S)

    assert with_renewal(unit, resumed).outcome == "renewed"
    new = assert_consistent(unit.key_dir)
    assert new is not None and new.record["tls_key_sha256"] == pending.record["tls_key_sha256"]
    assert {e["body"]["request_id"] for e in cert_requests(cloud)} == {pending.record["request_id"]}
    assert reconnects(unit)


def test_renewal_interrupted_after_the_answer_installs_it_without_asking_again(
        unit: Line, make_cloud: Callable[..., ReferenceCloud], pki: LabPki) -> None:  # noqa: F811
    cloud = lab_cloud(make_cloud, pki)
    old = unit.current()

    def cut(ca: Path, cert: Path, key: Path, device_id: str) -> ConnectResult:
        raise PowerCut

    async def interrupted(link: CloudLink, renewal: CertRenewal) -> None:
        with pytest.raises(PowerCut):
            await renewal.renew(timeout=ANSWER_S)

    with_renewal(unit, interrupted, probe=cut)
    pending = ks.KeyStore(unit.key_dir).pointer(ks.PENDING)
    assert pending is not None and pending.has(ks.CERT) and unit.current() == old

    async def resumed(link: CloudLink, renewal: CertRenewal) -> RenewalResult:
        return await renewal.renew(timeout=ANSWER_S)

    result = with_renewal(unit, resumed)
    assert result.outcome == "renewed" and result.generation == pending.number
    assert len(cert_requests(cloud)) == 1, "the certificate already received is not asked for again"
    assert reconnects(unit)


def test_a_certificate_from_another_ca_is_refused_and_the_old_one_kept(
        unit: Line, make_cloud: Callable[..., ReferenceCloud], pki: LabPki) -> None:  # noqa: F811
    lab_cloud(make_cloud, pki, foreign=True)
    old = unit.current()

    async def body(link: CloudLink, renewal: CertRenewal) -> RenewalResult:
        return await renewal.renew(new_key=False, timeout=ANSWER_S)

    result = with_renewal(unit, body)
    assert result.outcome == "refused" and "chain" in result.detail
    assert unit.current() == old and reconnects(unit)


def test_same_key_renewal_and_not_due(unit: Line, make_cloud: Callable[..., ReferenceCloud],  # noqa: F811
                                      pki: LabPki) -> None:
    lab_cloud(make_cloud, pki)
    old = unit.current()
    assert old is not None

    async def body(link: CloudLink, renewal: CertRenewal) -> tuple[RenewalResult, RenewalResult]:
        first = await renewal.renew(new_key=False, timeout=ANSWER_S)
        return first, await renewal.renew(timeout=ANSWER_S)

    first, second = with_renewal(unit, body)
    assert first.outcome == "renewed" and second.outcome == "not_due"
    new = unit.current()
    assert new is not None and new.record["tls_key_sha256"] == old.record["tls_key_sha256"]
    assert new.read(ks.CERT) != old.read(ks.CERT)


def test_attach_only_to_a_provisioned_key_store(tmp_path: Path) -> None:
    assert key_dir_of(tmp_path / "keys" / ks.CURRENT / ks.CERT) == tmp_path / "keys"
    assert key_dir_of(tmp_path / "devices" / "dev-a" / "cert.pem") is None  # the lab's hand-made identities
    assert attach(object(), tmp_path / "devices" / "dev-a" / "cert.pem", "127.0.0.1", 1) is None


def test_a_malformed_certificate_reply_is_rejected_by_the_link_and_changes_nothing(
        unit: Line, make_cloud: Callable[..., ReferenceCloud], pki: LabPki) -> None:  # noqa: F811
    cloud = lab_cloud(make_cloud, pki)
    old = unit.current()
    assert old is not None

    def reported(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["kind"] == "error" and e["body"]["body"]["data"]["topic"].endswith("/cert")]

    async def body(link: CloudLink, renewal: CertRenewal) -> int:
        junk = {"request_id": "r1", "status": "ok", "cert": "junk"}  # breaks the contract on purpose
        cloud.publish_unchecked(old.record["device_id"], proto.CERT, junk)
        # the device refuses it and reports an "error" event upstream: wait for that to arrive
        assert await asyncio.to_thread(cloud.wait_for, lambda: bool(reported(cloud.events())), ANSWER_S)
        return link.stats.rejected

    assert with_renewal(unit, body) == 1
    assert unit.current() == old and ks.KeyStore(unit.key_dir).pointer(ks.PENDING) is None
