"""``pocket-agent provision`` end to end: a virtual modem on a real pty, the lab CA, a real
mosquitto with TLS and ACLs, and the command run as the line runs it (a process, JSON out,
an exit code)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent import config as agent_config
from agent.clock import FakeClock
from agent.cloud import keystore as ks
from agent.cloud.certs import load_tls_key
from agent.cloud.link import CloudConfig, CloudLink
from agent.faces.provision import exitcodes, show
from board.virtual.modem.device import VirtualModem
from board.virtual.modem.model import FAST_SCALE, ModemConfig
from tests.provision.conftest import Broker, Line, assert_consistent, issue, sign

RADIO_WAIT_S = "0.5"
"""--register-wait for the 'never registers' case: enough to prove the check, short for the suite."""

SILENT_DEADLINE_S = 1.5
"""--modem-timeout for the silent-port case; the run must end within it plus start-up."""

MARGIN_S = 1.0
"""Scheduling slack on a loaded 2-core runner, added to the deadline the run itself measures
(its record's timings_s.total: from start of the run to its end, interpreter start excluded)."""


CERT_DAYS = 90
"""Validity of the certificates the tests sign: outside identity's 30-day warning."""


def provision_with_cert(line: Line, *extra: str, online: bool = False) -> tuple[Path, dict]:
    first = line.run(*extra)
    assert first.code == exitcodes.OK, first.stderr
    cert = line.root / "signed.pem"
    cert.write_bytes(sign(line.pki, first.record["csr"].encode(), days=CERT_DAYS))
    second = line.run("--cert", str(cert), *extra, online=online)
    return cert, second.record | {"_code": second.code, "_stderr": second.stderr}


def test_first_run_makes_keys_and_a_csr_with_device_id_and_imei(line: Line) -> None:
    res = line.run("--device-id", "rtr-000001", "--label-imei", "356938035643809")
    assert res.code == exitcodes.OK, res.stderr
    rec = res.record
    assert rec["ok"] and rec["status"] == "provisioned" and rec["device_id"] == "rtr-000001"
    assert rec["imei"] == "356938035643809" and rec["cert"] is None
    csr = x509.load_pem_x509_csr(rec["csr"].encode())
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "rtr-000001"
    assert csr.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "356938035643809"
    gen = assert_consistent(line.key_dir)
    assert gen is not None and gen.record["tls_key_sha256"] == rec["tls_key_sha256"]
    assert {c["name"] for c in rec["selftest"]} >= {"modem_answers", "imei_label", "vsim_slots", "seed_registered",
                                                     "console_port", "clock_sane", "broker_connect"}
    assert all(c["ok"] for c in rec["selftest"])
    assert line.key_dir.stat().st_mode & 0o777 == 0o700
    assert "PRIVATE KEY" not in res.stderr and "PRIVATE" not in str(rec)


def test_end_to_end_with_the_lab_ca_then_the_agent_connects(line: Line, broker: Broker) -> None:
    line.broker = f"{broker.host}:{broker.port}"
    _, rec = provision_with_cert(line, online=True)
    assert rec["_code"] == exitcodes.OK, rec["_stderr"]
    assert rec["status"] == "updated" and "CN=pocket-lab CA" in rec["cert"]["issuer"]
    assert {c["name"]: c["ok"] for c in rec["selftest"]}["broker_connect"] is True
    cfg = agent_config.load(line.config)  # the config the daemon will read, through the symlink
    assert cfg.device_id == rec["device_id"]

    async def connect() -> bool:
        c = cfg.cloud
        link = CloudLink(CloudConfig(device_id=cfg.device_id, host=c.host, port=c.port, ca_file=c.ca,
                                     cert_file=c.cert, key_file=c.key, sealing_key_file=c.sealing_key,
                                     platform_key_file=c.platform_key, first_delay_max=0.1,
                                     request_window=0.0),  # no boot spread: the wait below is 10 s
                         state_dir=cfg.state_dir)
        await link.start()
        try:
            return await link.wait_connected(10.0)
        finally:
            await link.stop()

    assert asyncio.run(connect())
    d = show.describe(line.key_dir)
    assert d["device_id"] == rec["device_id"] and 89 < d["cert"]["days_left"] <= 90 and not d["warnings"]


def test_identity_warns_within_30_days_and_fails_when_expired(line: Line, capsys: pytest.CaptureFixture) -> None:
    provision_with_cert(line)
    clock = FakeClock(epoch=time.time())
    assert show.describe(line.key_dir, clock)["warnings"] == []
    clock.advance(70 * 86400)
    d = show.describe(line.key_dir, clock)
    assert d["warnings"] == ["certificate expires in 20 days (under 30): renewal is due"]
    clock.advance(21 * 86400)
    assert "EXPIRED" in show.describe(line.key_dir, clock)["warnings"][0]
    args = argparse.Namespace(key_dir=line.key_dir, profile="virtual", json=False)
    assert show.main(args) == 0
    out = capsys.readouterr().out
    assert "pw-356938035643809" in out and "days left" in out and "WARNING" not in out
    assert show.main(argparse.Namespace(key_dir=line.root / "none", profile="virtual", json=True)) == show.NO_IDENTITY


def test_rerun_is_idempotent(line: Line) -> None:
    cert, rec = provision_with_cert(line)
    assert rec["_code"] == exitcodes.OK
    gen = line.current()
    assert gen is not None
    key_inode = gen.file(ks.TLS_KEY).stat().st_ino
    for extra in ((), ("--cert", str(cert))):
        again = line.run(*extra)
        assert again.code == exitcodes.OK, again.stderr
        assert again.record["status"] == "kept"
        assert again.record["generation"] == gen.number
        assert again.record["tls_key_sha256"] == rec["tls_key_sha256"]
        assert again.record["cert"] == rec["cert"]
    assert line.current().file(ks.TLS_KEY).stat().st_ino == key_inode  # type: ignore[union-attr]
    assert sorted(p.name for p in line.key_dir.iterdir()) == [".lock", "current", gen.path.name]


def test_force_rekey_replaces_keys_and_drops_the_old_certificate(line: Line) -> None:
    _, rec = provision_with_cert(line)
    old = line.current()
    assert old is not None
    res = line.run("--force-rekey")
    assert res.code == exitcodes.OK, res.stderr
    assert res.record["status"] == "rekeyed" and res.record["cert"] is None and res.record["csr"]
    assert res.record["tls_key_sha256"] != rec["tls_key_sha256"]
    assert res.record["sealing_key_sha256"] != rec["sealing_key_sha256"]
    assert res.record["generation"] == old.number + 1
    assert not old.path.exists(), "the abandoned key must not stay on the device"
    assert_consistent(line.key_dir)


def test_other_device_id_or_imei_is_refused_without_force(line: Line, tmp_path: Path) -> None:
    assert line.run("--device-id", "rtr-1").code == exitcodes.OK
    before = line.current()
    res = line.run("--device-id", "rtr-2")
    assert res.code == exitcodes.ALREADY_PROVISIONED and res.record["reason"] == "already_provisioned"
    assert "rtr-1" in res.record["error"]
    other = VirtualModem(ModemConfig(time_scale=FAST_SCALE, imei="490154203237518"))
    other.start()
    try:  # the same flash moved to a board with another modem
        res = Line(line.root, line.pki, other.path, line.console).run("--device-id", "rtr-1")
    finally:
        other.stop()
    assert res.code == exitcodes.ALREADY_PROVISIONED
    assert line.current() == before


def _key(line: Line) -> ec.EllipticCurvePrivateKey:
    gen = line.current()
    assert gen is not None
    return load_tls_key(gen.read(ks.TLS_KEY))


@pytest.mark.parametrize("flaw", ["key", "device", "expired", "chain", "imei"])
def test_a_wrong_certificate_is_refused_with_its_own_exit_code(line: Line, flaw: str) -> None:
    first = line.run("--device-id", "rtr-9")
    assert first.code == exitcodes.OK
    pub = _key(line).public_key()
    now = dt.datetime.now(dt.UTC)
    cert = {
        "key": lambda: issue(line.pki, public_key=ec.generate_private_key(ec.SECP256R1()).public_key(), cn="rtr-9"),
        "device": lambda: issue(line.pki, public_key=pub, cn="rtr-8"),
        "expired": lambda: issue(line.pki, public_key=pub, cn="rtr-9", not_before=now - dt.timedelta(days=60),
                                 not_after=now - dt.timedelta(days=1)),
        "chain": lambda: issue(line.pki, public_key=pub, cn="rtr-9", foreign=True),
        "imei": lambda: issue(line.pki, public_key=pub, cn="rtr-9", imei="490154203237518"),
    }[flaw]()
    path = line.root / "bad.pem"
    path.write_bytes(cert)
    res = line.run("--device-id", "rtr-9", "--cert", str(path))
    assert res.code == exitcodes.CERT_MISMATCH, res.stderr
    assert res.record["reason"] == f"cert_{'device' if flaw == 'imei' else flaw}"
    gen = line.current()
    assert gen is not None and not gen.has(ks.CERT) and gen.number == first.record["generation"]


def test_label_imei_mismatch_fails_before_any_key_is_made(line: Line) -> None:
    res = line.run("--label-imei", "490154203237518")
    assert res.code == exitcodes.SELFTEST_FAILED and res.record["reason"] == "imei_label"
    assert line.current() is None and not any(line.key_dir.glob("gen-*"))


def test_selftest_failures_are_reported_together_and_keep_the_identity(tmp_path: Path, line: Line) -> None:
    silent_radio = VirtualModem(ModemConfig(time_scale=FAST_SCALE, radio_on_at_boot=False))
    silent_radio.start()
    try:
        unit = Line(line.root, line.pki, silent_radio.path, str(tmp_path / "no-console"))
        res = unit.run("--register-wait", RADIO_WAIT_S)
    finally:
        silent_radio.stop()
    assert res.code == exitcodes.SELFTEST_FAILED
    failed = {c["name"] for c in res.record["selftest"] if not c["ok"]}
    assert failed == {"seed_registered", "console_port"}
    assert assert_consistent(line.key_dir) is not None and res.record["csr"]


def test_missing_modem_is_reported_clearly_and_quickly(line: Line) -> None:
    gone = Line(line.root, line.pki, str(line.root / "ttyUSB9"), line.console).run()
    assert gone.code == exitcodes.MODEM_NOT_FOUND and "ttyUSB9" in gone.record["error"]
    assert gone.record["timings_s"]["total"] < MARGIN_S  # a port that does not exist fails at once
    master, slave = os.openpty()  # a port that exists but where nothing answers
    try:
        silent = Line(line.root, line.pki, os.ttyname(slave), line.console)
        res = silent.run("--modem-timeout", str(SILENT_DEADLINE_S))
    finally:
        os.close(master)
        os.close(slave)
    assert res.code == exitcodes.MODEM_NOT_FOUND, res.stderr
    assert "no modem answers" in res.record["error"] and "modem not found" in res.stderr
    assert res.record["timings_s"]["total"] < SILENT_DEADLINE_S + MARGIN_S
    assert line.current() is None


def test_usage_errors(line: Line, tmp_path: Path) -> None:
    bad = line.run("--broker", "nohostport")
    assert bad.code == exitcodes.USAGE and "HOST:PORT" in bad.record["error"]
    missing = line.run("--platform-key", str(tmp_path / "absent.pub"))
    assert missing.code == exitcodes.USAGE and "absent.pub" in missing.record["error"]
    not_key = line.run("--platform-key", str(line.pki.ca_cert))
    assert not_key.code == exitcodes.USAGE
    assert line.current() is None


def test_two_runs_on_one_unit_at_once_are_serialised(line: Line) -> None:
    """A station script that starts the same unit twice: the key-store lock orders them, and
    the second finds the first's identity (kept), rather than both making keys."""
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: line.run(), range(2)))
    assert [r.code for r in results] == [exitcodes.OK, exitcodes.OK], [r.stderr for r in results]
    assert sorted(r.record["status"] for r in results) == ["kept", "provisioned"]
    assert results[0].record["tls_key_sha256"] == results[1].record["tls_key_sha256"]
    assert len(list(line.key_dir.glob("gen-*"))) == 1


def test_a_key_directory_others_can_read_is_refused(line: Line) -> None:
    line.key_dir.mkdir(parents=True, mode=0o755)
    os.chmod(line.key_dir, 0o755)  # a board image that made it world-readable (umask would hide it)
    res = line.run()
    assert res.code == exitcodes.STORAGE and "0700" in res.record["error"]
    assert not any(line.key_dir.iterdir()), "nothing may be written into it"
