"""``pocket-agent identity``: who this device is, and how long its certificate has left.

For a technician and for monitoring scripts: text by default, ``--json`` for machines.
Warns when the certificate expires within ``EXPIRY_WARNING_DAYS``; renewal over MQTT
(agent.cloud.renewal) should have replaced it by then, so the warning means renewal is
stuck and someone should look.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

from agent import layout
from agent.clock import Clock
from agent.cloud import certs
from agent.cloud import keystore as ks
from agent.cloud.crypto_compat import valid_until

LOGGER = logging.getLogger(__name__)

EXPIRY_WARNING_DAYS = 30
"""Warn a month ahead: enough for a device that is offline for weeks to come back and renew."""

NO_IDENTITY = 1
"""Exit code when the device has no identity or its certificate has expired."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--key-dir", type=Path, default=layout.KEY_DIR, help=f"the key store ({layout.KEY_DIR})")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")


def describe(key_dir: Path, clock: Clock | None = None) -> dict[str, Any]:
    """The identity as a dict (what --json prints); {"provisioned": False} when there is none."""
    clock = clock or Clock()
    store = ks.KeyStore(key_dir)
    gen = store.current()
    if gen is None:
        return {"provisioned": False, "key_dir": str(key_dir)}
    r = gen.record
    out: dict[str, Any] = {"provisioned": True, "key_dir": str(key_dir), "generation": gen.number,
                           "device_id": r.get("device_id"), "imei": r.get("imei"),
                           "tls_key_sha256": r.get("tls_key_sha256"),
                           "sealing_key_sha256": r.get("sealing_key_sha256"), "cert": None, "warnings": []}
    pending = store.pointer(ks.PENDING)
    if pending is not None:
        out["renewal_pending"] = {"generation": pending.number, "since": pending.record.get("created_at")}
    if not gen.has(ks.CERT):
        out["warnings"].append("no certificate installed yet: the CSR awaits signing")
        return out
    leaf = certs.load_chain(gen.read(ks.CERT))[0]
    info = certs.CertInfo.of(leaf)
    now = dt.datetime.fromtimestamp(clock.wall(), dt.UTC)
    days = (valid_until(leaf) - now).total_seconds() / 86400
    out["cert"] = {"serial": info.serial, "issuer": info.issuer, "not_before": info.not_before,
                   "not_after": info.not_after, "sha256": info.fingerprint, "days_left": round(days, 1)}
    if days < 0:
        out["warnings"].append(f"certificate EXPIRED {-days:.0f} days ago")
    elif days < EXPIRY_WARNING_DAYS:
        out["warnings"].append(f"certificate expires in {days:.0f} days (under {EXPIRY_WARNING_DAYS}): renewal is due")
    return out


def _text(d: dict[str, Any]) -> str:
    if not d["provisioned"]:
        return f"not provisioned (no identity in {d['key_dir']})"
    lines = [f"device id     {d['device_id']}", f"IMEI          {d['imei']}",
             f"generation    {d['generation']} in {d['key_dir']}", f"TLS key       sha256:{d['tls_key_sha256']}",
             f"sealing key   sha256:{d['sealing_key_sha256']}"]
    cert = d["cert"]
    if cert:
        lines += [f"certificate   serial {cert['serial']}, issuer {cert['issuer']}",
                  f"              sha256:{cert['sha256']}",
                  f"              valid {cert['not_before']} .. {cert['not_after']} ({cert['days_left']} days left)"]
    if "renewal_pending" in d:
        lines.append(f"renewal       pending since {d['renewal_pending']['since']}")
    lines += [f"WARNING: {w}" for w in d["warnings"]]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    d = describe(args.key_dir)
    print(json.dumps(d, sort_keys=True) if args.json else _text(d))
    if args.json:  # text mode already shows them on stdout
        for warning in d.get("warnings", []):
            LOGGER.warning("%s", warning)
    expired = d.get("cert") is not None and d["cert"]["days_left"] < 0
    return NO_IDENTITY if not d["provisioned"] or expired else 0
