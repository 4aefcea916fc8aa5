"""The lab's certificate authority and keys, generated fresh at lab start.

Layout under ``directory`` (a contract: the broker config, the reference cloud and
tests read these paths)::

    ca.pem ca.key                      the lab CA (TLS: broker and every client)
    broker.pem broker.key              SANs: the given hosts, 127.0.0.1, localhost
    cloud.pem cloud.key                CN "cloud": the reference cloud's client cert
    platform.key platform.pub          Ed25519: signs sealed profiles (pinned on devices)
    devices/<id>/cert.pem key.pem      CN <id>: the device's MQTT client identity
    devices/<id>/sealing.key sealing.pub   X25519: profiles are sealed to this
    foreign/ca.pem ca.key              a second CA the broker does not trust
    foreign/device.pem device.key      a cert from it with the first device's CN

Every private key is written 0600 from the first byte (agent.store.atomic_write).
TLS keys are ECDSA P-256: quick to generate (500 devices for the storm bench in about
a second) and what embedded TLS stacks accelerate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent import store
from agent.cloud import sealing

LOGGER = logging.getLogger(__name__)

CERT_DAYS = 30
"""A lab CA lives as long as a lab run; 30 days covers a long soak test."""

CLOUD_CN = "cloud"
"""The reference cloud's identity: the broker's ACL gives this user every device tree."""


@dataclass(frozen=True)
class DeviceFiles:
    device_id: str
    cert: Path
    key: Path
    sealing_key: Path
    sealing_pub: Path


@dataclass(frozen=True)
class LabPki:
    directory: Path
    ca_cert: Path
    ca_key: Path
    broker_cert: Path
    broker_key: Path
    cloud_cert: Path
    cloud_key: Path
    platform_key: Path
    platform_pub: Path
    devices_dir: Path
    foreign_ca_cert: Path
    foreign_ca_key: Path
    foreign_device_cert: Path
    foreign_device_key: Path
    devices: dict[str, DeviceFiles] = field(default_factory=dict)

    @property
    def release_key(self) -> Path:
        """The lab's release key (issue 26): packaging/release.py signs the lab's releases with it."""
        return self.directory / "release.key"

    @property
    def release_pub(self) -> Path:
        """Its public half, pinned in the lab agent's ``[update] release_key``."""
        return self.directory / "release.pub"


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "pocket-lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert, key


def _issue(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, cn: str, *, server_hosts: list[str] | None = None
           ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if server_hosts is not None:
        sans: list[x509.GeneralName] = []
        for host in dict.fromkeys([*server_hosts, "127.0.0.1", "localhost"]):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    store.atomic_write(key_path, _key_pem(key))
    store.atomic_write(cert_path, _cert_pem(cert), mode=store.PUBLIC_MODE)


def add_device(pki: LabPki, device_id: str) -> DeviceFiles:
    """Issue one more device (cert, key, sealing key pair) under the lab CA."""
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    return _make_device(pki.devices_dir, ca, ca_key, device_id)


def _make_device(devices_dir: Path, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
                 device_id: str) -> DeviceFiles:
    d = store.ensure_private_dir(devices_dir / device_id)
    files = DeviceFiles(device_id, d / "cert.pem", d / "key.pem", d / "sealing.key", d / "sealing.pub")
    _write_pair(files.cert, files.key, *_issue(ca, ca_key, device_id))
    skey = X25519PrivateKey.generate()
    store.atomic_write(files.sealing_key, sealing.private_pem(skey))
    store.atomic_write(files.sealing_pub, sealing.public_pem(skey.public_key()), mode=store.PUBLIC_MODE)
    return files


def create_lab_pki(directory: Path, device_ids: list[str], broker_hosts: list[str]) -> LabPki:
    """Generate the whole lab PKI under ``directory`` (see the module doc for the layout)."""
    d = store.ensure_private_dir(Path(directory).resolve())
    devices_dir = store.ensure_private_dir(d / "devices")
    foreign = store.ensure_private_dir(d / "foreign")
    pki = LabPki(d, d / "ca.pem", d / "ca.key", d / "broker.pem", d / "broker.key", d / "cloud.pem", d / "cloud.key",
                 d / "platform.key", d / "platform.pub", devices_dir, foreign / "ca.pem", foreign / "ca.key",
                 foreign / "device.pem", foreign / "device.key")
    ca, ca_key = _make_ca("pocket-lab CA")
    _write_pair(pki.ca_cert, pki.ca_key, ca, ca_key)
    _write_pair(pki.broker_cert, pki.broker_key, *_issue(ca, ca_key, "broker", server_hosts=broker_hosts))
    _write_pair(pki.cloud_cert, pki.cloud_key, *_issue(ca, ca_key, CLOUD_CN))
    platform = Ed25519PrivateKey.generate()
    store.atomic_write(pki.platform_key, sealing.private_pem(platform))
    store.atomic_write(pki.platform_pub, sealing.public_pem(platform.public_key()), mode=store.PUBLIC_MODE)
    release = Ed25519PrivateKey.generate()  # not the platform key: docs/update.md, "Two keys"
    store.atomic_write(pki.release_key, sealing.private_pem(release))
    store.atomic_write(pki.release_pub, sealing.public_pem(release.public_key()), mode=store.PUBLIC_MODE)
    for device_id in device_ids:
        pki.devices[device_id] = _make_device(devices_dir, ca, ca_key, device_id)
    fca, fca_key = _make_ca("foreign CA")
    _write_pair(pki.foreign_ca_cert, pki.foreign_ca_key, fca, fca_key)
    _write_pair(pki.foreign_device_cert, pki.foreign_device_key,
                *_issue(fca, fca_key, device_ids[0] if device_ids else "device"))
    LOGGER.info("lab PKI in %s: CA, broker, cloud, platform key, %d devices", d, len(device_ids))
    return pki
