"""Power pulled at every step: the process is SIGKILLed right after each durable step of
provisioning, then the state is checked (the old identity or the new one, complete, never
a key without its record) and a plain re-run must finish the job."""

from __future__ import annotations

import pytest

from agent.cloud import keystore as ks
from agent.faces.provision import exitcodes
from tests.provision.conftest import Line, assert_consistent, sign

KILLED = -9
WRAPPER = ["tests.provision.crash_at"]

FIRST_RUN_STEPS = ["recovered", "modem", "staging", "tls_key", "sealing_key", "csr", "pins", "config", "sealed",
                   "committed", "config_linked", "selftest"]
INSTALL_STEPS = ["staging", "cert", "pins", "config", "sealed", "committed", "config_linked"]


@pytest.mark.parametrize("step", FIRST_RUN_STEPS)
def test_first_provisioning_killed_at_each_step_recovers(line: Line, step: str) -> None:
    killed = line.run(wrapper=[*WRAPPER, step])
    assert killed.code == KILLED, f"not killed at {step}: {killed.stderr}"
    gen = assert_consistent(line.key_dir)
    committed = FIRST_RUN_STEPS.index(step) >= FIRST_RUN_STEPS.index("committed")
    assert (gen is not None) == committed
    again = line.run()
    assert again.code == exitcodes.OK, again.stderr
    assert again.record["status"] == ("kept" if committed else "provisioned")
    final = assert_consistent(line.key_dir)
    assert final is not None and final.number == again.record["generation"]
    if committed:
        assert final.record["tls_key_sha256"] == gen.record["tls_key_sha256"]  # type: ignore[union-attr]
    leftovers = sorted(p.name for p in line.key_dir.iterdir())
    assert leftovers == [".lock", "current", final.path.name]
    assert line.config.resolve() == final.file(ks.AGENT_CONFIG)


@pytest.mark.parametrize("step", INSTALL_STEPS)
def test_certificate_install_killed_at_each_step_keeps_old_or_new(line: Line, step: str) -> None:
    first = line.run()
    assert first.code == exitcodes.OK
    old = line.current()
    assert old is not None
    cert = line.root / "signed.pem"
    cert.write_bytes(sign(line.pki, first.record["csr"].encode()))
    killed = line.run("--cert", str(cert), wrapper=[*WRAPPER, step])
    assert killed.code == KILLED, f"not killed at {step}: {killed.stderr}"
    gen = assert_consistent(line.key_dir)
    assert gen is not None
    assert gen.record["tls_key_sha256"] == old.record["tls_key_sha256"]
    committed = INSTALL_STEPS.index(step) >= INSTALL_STEPS.index("committed")
    assert gen.has(ks.CERT) == committed
    assert (gen.path == old.path) == (not committed)
    again = line.run("--cert", str(cert))
    assert again.code == exitcodes.OK, again.stderr
    final = assert_consistent(line.key_dir)
    assert final is not None and final.has(ks.CERT)
    assert sorted(p.name for p in line.key_dir.iterdir()) == [".lock", "current", final.path.name]
