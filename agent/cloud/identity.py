"""Who this device is to the cloud: certificate CN, sealing key, and its session counter.

The device id *is* the client certificate's CN (the broker uses it as the MQTT
username and as the %u in its ACL), so the agent reads it from the certificate rather
than trusting a config value that could disagree; a mismatch is a ConfigError at start.

The session counter goes up by one on every connection attempt and is kept on disk:
it is stamped into the retained birth message and into the last will, so a will from
an old connection that the broker publishes late can never make the cloud believe a
newer session is offline.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent import store
from agent.cloud.certpeek import leaf_facts
from agent.cloud.protocol import DEVICE_ID_RE
from agent.errors import ConfigError

LOGGER = logging.getLogger(__name__)

SESSION_FILE = "session.json"


def certificate_cn(cert_file: Path | str) -> str:
    """The subject CN of a PEM certificate (read without cryptography.x509, which the
    serving daemon does not load: agent/cloud/certpeek.py)."""
    try:
        cn = leaf_facts(Path(cert_file).read_bytes()).common_name
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read device certificate {cert_file}: {exc}") from None
    if cn is None:
        raise ConfigError(f"device certificate {cert_file} has no CN")
    return cn


def check_device_id(device_id: str, cert_file: Path | str) -> str:
    """The configured id must be a valid topic level and equal the certificate's CN."""
    if not DEVICE_ID_RE.match(device_id):
        raise ConfigError(f"device id {device_id!r} is not a valid topic level")
    cn = certificate_cn(cert_file)
    if cn != device_id:
        raise ConfigError(f"device id {device_id!r} differs from certificate CN {cn!r}")
    return device_id


class SessionCounter:
    """A durable, monotonically increasing counter (one atomic write per connection)."""

    def __init__(self, state_dir: Path):
        self.path = Path(state_dir) / SESSION_FILE
        self.value = int((store.read_json(self.path, default={}) or {}).get("session", 0))

    def next(self) -> int:
        self.value += 1
        store.atomic_write_json(self.path, {"session": self.value})
        return self.value
