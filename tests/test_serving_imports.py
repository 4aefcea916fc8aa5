"""The serving daemon does not load what only renewal or provisioning needs, nor a netlink
library (issue 19 item 6, docs/footprint.md).

A fresh interpreter imports every module a serving daemon has loaded (the supervisor's
and the console daemon's deferred imports included), then does what a serving daemon does
with its certificate: checks the device id against the CN at start and asks once a day
whether renewal is due, on a provisioned key store. Then none of the modules below may be
in ``sys.modules``. A behaviour
test, not a timed or measured one: an import added at the top of a serving module that
pulls one of these in fails it, whatever the machine.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.cloud import keystore as ks

REPO = Path(__file__).resolve().parents[1]

SERVING_MODULES = (
    "agent.faces.cli.main", "agent.faces.cli.run", "agent.core.supervisor",
    # imported by the supervisor and agent.core.consoled when they start the console
    "agent.core.consoled", "agent.core.audit", "agent.core.control", "agent.core.view",
    "agent.core.technicians", "agent.faces.console.ports", "agent.faces.console.auth",
    # imported by agent.core.paged when the renter's page is on (issue 25)
    "agent.core.paged", "agent.core.page_settings", "agent.faces.page.server",
    # imported where it is used: the modem's port
    "serial",
)
"""What a serving daemon imports (a lab agent's ``sys.modules`` after swaps and faults,
docs/footprint.md, holds these and what they import)."""

NOT_SERVING = {
    "cryptography.x509": "certificate parsing and CSRs: renewal and provisioning only",
    "agent.cloud.certs": "CSRs and certificate checks: renewal and provisioning only",
    "agent.cloud.connect_once": "the one-shot MQTT probe: renewal and provisioning only",
    "agent.faces.provision": "factory provisioning: a command of its own",
    "pyroute2": "a netlink library: the agent speaks rtnetlink (agent/net/rtnl.py) and conntrack"
                " (agent/net/conntrack.py) itself, 5.3 MB less on Debian 12 (docs/footprint.md)",
    "sqlite3": "pyroute2's NDB database, or anything else's: nothing serving keeps one",
}

CHILD = """
import importlib, json, sys
import cryptography.hazmat.primitives.ciphers.aead  # sealing's primitives, before any agent module
library_x509 = "cryptography.x509" in sys.modules  # cryptography < 39 (Debian 12's 38): its backend does
from agent.cloud.identity import check_device_id
from agent.cloud.renewal import CertRenewal

for name in {modules!r}:
    importlib.import_module(name)
check_device_id({device!r}, {cert!r})
renewal = CertRenewal({key_dir!r}, publish=lambda *a, **k: True, probe=lambda *a: None)
due = renewal.due()
print(json.dumps({{"modules": sorted(sys.modules), "due": due, "library_x509": library_x509}}))
"""


def provisioned_key_store(key_dir: Path, device_id: str, days_left: int) -> Path:
    """A key store whose current generation holds a certificate for ``device_id``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=days_left)).sign(key, hashes.SHA256()))
    store = ks.KeyStore(key_dir)
    store.ensure_dir()
    staging = store.stage()
    staging.write_public(ks.CERT, cert.public_bytes(serialization.Encoding.PEM))
    gen = store.seal(staging, {"device_id": device_id, "imei": "490154203237518"})
    store.commit(gen, keep_previous=False)
    return gen.file(ks.CERT)


def serving_process(tmp_path: Path, days_left: int) -> dict[str, object]:
    device = "rtr-000001"
    cert = provisioned_key_store(tmp_path / "keys", device, days_left)
    code = CHILD.format(modules=SERVING_MODULES, device=device, cert=str(cert), key_dir=str(tmp_path / "keys"))
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_serving_path_leaves_renewal_provisioning_and_unused_netlink_out(tmp_path: Path) -> None:
    seen = serving_process(tmp_path, days_left=10)
    assert seen["due"] is True  # the daily question was really asked and answered (10 < 30 days)
    modules = set(seen["modules"])  # type: ignore[arg-type]
    unwanted = {k: v for k, v in NOT_SERVING.items() if not (k == "cryptography.x509" and seen["library_x509"])}
    loaded = {name: why for name, why in unwanted.items()
              if name in modules or any(m.startswith(name + ".") for m in modules)}
    assert not loaded, f"the serving path imports modules it does not need: {loaded}"


def test_renewal_not_due_is_answered_without_x509_too(tmp_path: Path) -> None:
    seen = serving_process(tmp_path, days_left=200)
    assert seen["due"] is False
    assert "agent.cloud.certs" not in seen["modules"]  # type: ignore[operator]
    assert seen["library_x509"] or "cryptography.x509" not in seen["modules"]  # type: ignore[operator]
