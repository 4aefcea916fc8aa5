"""A provisioned identity without a modem: the key store laid out as provisioning lays it
(agent/cloud/keystore.py: a sealed generation, ``current`` pointing at it, private keys
0600), with the configuration provisioning renders (agent/faces/provision/flow.py), so the
daemon's start-up checks and the init script can be run against the real layout."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from agent.boardprofile import load_profile
from agent.cloud import certs, sealing
from agent.cloud import keystore as ks
from agent.faces.provision.flow import Request, render_config
from agent.layout import Owner
from board.virtual.cloud.pki import _cert_pem, _make_ca
from tests.conftest import REPO

DEVICE_ID = "rtr-000001"
IMEI = "356938035643809"
PROFILE = REPO / "board/profiles/virtual.toml"


@dataclass(frozen=True)
class Identity:
    root: Path
    key_dir: Path
    config: Path
    state_dir: Path

    def current(self, name: str) -> Path:
        return self.key_dir / ks.CURRENT / name


def provisioned(root: Path, *, owner: Owner | None = None, profile: Path = PROFILE,
                with_cert: bool = True) -> Identity:
    """``root/keys`` (the key store), ``root/agent.toml`` (the link provisioning makes) and
    ``root/state`` (not created: the daemon and provisioning make it)."""
    key_dir, config, state = root / "keys", root / "agent.toml", root / "state"
    ca, ca_key = _make_ca("test CA")
    store = ks.KeyStore(key_dir, owner)
    store.ensure_dir()
    with store.lock():
        staging = store.stage()
        tls_key = certs.new_tls_key()
        staging.write_private(ks.TLS_KEY, certs.private_pem(tls_key))
        sealing_key = X25519PrivateKey.generate()
        staging.write_private(ks.SEALING_KEY, sealing.private_pem(sealing_key))
        staging.write_public(ks.SEALING_PUB, sealing.public_pem(sealing_key.public_key()))
        csr = certs.make_csr(tls_key, DEVICE_ID, IMEI)
        staging.write_public(ks.CSR, csr)
        if with_cert:
            staging.write_public(ks.CERT, certs.sign_csr(csr, ca_cert=ca, ca_key=ca_key, days=90,
                                                         now=dt.datetime.now(dt.UTC)))
        staging.write_public(ks.CA, _cert_pem(ca))
        staging.write_public(ks.PLATFORM_PUB, sealing.public_pem(Ed25519PrivateKey.generate().public_key()))
        req = Request(port="/dev/null", profile=load_profile(profile), profile_path=profile, key_dir=key_dir,
                      config_path=config, state_dir=state, broker_host="127.0.0.1", broker_port=8883,
                      ca_file=key_dir, platform_key_file=key_dir, owner=owner)
        staging.write_public(ks.AGENT_CONFIG, render_config(req, DEVICE_ID))
        gen = store.seal(staging, {"device_id": DEVICE_ID, "imei": IMEI,
                                   "tls_key_sha256": certs.fingerprint(tls_key.public_key())})
        store.commit(gen, keep_previous=False)
    ks.link_config(config, key_dir)
    return Identity(root, key_dir, config, state)
