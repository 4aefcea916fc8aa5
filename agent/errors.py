"""Typed errors shared by every layer.

Every error that crosses a module boundary is one of these, so the supervisor can
log it, report it upstream and keep serving. Each carries what was received (``raw``)
where that helps a field engineer, but never a secret: SIM keys (Ki, OPc) and private
keys must not be put into any of them.
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent raises on purpose."""


class ConfigError(AgentError):
    """A config file or board profile is missing, malformed or inconsistent."""


class ModemError(AgentError):
    """The modem answered something we cannot use, or did not answer."""

    def __init__(self, message: str, *, command: str | None = None, raw: str | None = None):
        super().__init__(message)
        self.command = command
        self.raw = raw


class AtTimeout(ModemError):
    """No final result code arrived within the command's timeout."""


class AtCommandError(ModemError):
    """The modem answered with ERROR, +CME ERROR, +CMS ERROR or another failure code."""

    def __init__(
        self,
        message: str,
        *,
        command: str | None = None,
        raw: str | None = None,
        code: int | None = None,
        name: str | None = None,
    ):
        super().__init__(message, command=command, raw=raw)
        self.code = code
        self.name = name


class PortClosed(ModemError):
    """The serial port went away (USB cable pulled, modem rebooted)."""


class PortStalled(PortClosed):
    """The modem stopped taking bytes: a write waited for the tty longer than its bound
    (agent/modem/serialport.py). The port is given up and reopened like a closed one."""


class ParseError(ModemError):
    """A response line did not match the family's grammar."""


class ProtocolError(AgentError):
    """A cloud message is malformed, oversized, of the wrong schema or version."""

    def __init__(self, message: str, *, topic: str | None = None, reason: str = "malformed"):
        super().__init__(message)
        self.topic = topic
        self.reason = reason


class AssignmentUnavailable(ProtocolError):
    """No SIM assignment could be obtained from the cloud: timed out or refused (``reason``)."""


class SealError(ProtocolError):
    """A sealed profile failed verification: signature, device binding, expiry, replay."""


class PacingError(ProtocolError):
    """A pacing policy from the platform would make devices hammer it or wait forever
    (agent.cloud.pacing.BOUNDS); it is refused whole and the previous one stays."""

    def __init__(self, message: str, *, field: str, value: object):
        super().__init__(message, reason="policy_bounds")
        self.field = field
        self.value = value


class PlanError(ProtocolError):
    """A plan or a plan update breaks its contract (agent/plans/): refused whole, the
    previous plan stays. ``field`` names the part (``plan.rules[1].window``), never a value
    beyond what the rule says."""

    def __init__(self, field: str, rule: str, *, reason: str = "plan"):
        super().__init__(f"plan field {field!r} {rule}", reason=reason)
        self.field = field
        self.rule = rule


class JournalError(AgentError):
    """The usage journal cannot be written (disk full, read-only flash)."""


class NetError(AgentError):
    """A netlink operation on the data interface failed."""


class CertificateMismatch(AgentError):
    """A device certificate (or CSR) cannot be installed: wrong key, wrong device, not
    from the configured CA, expired or not yet valid (``reason`` says which)."""

    def __init__(self, message: str, *, reason: str):
        super().__init__(message)
        self.reason = reason


class ProvisionError(AgentError):
    """Factory provisioning stopped; ``exit_code`` is the documented code for the line
    (docs/provisioning.md), ``reason`` a short word for the factory database."""

    def __init__(self, message: str, *, exit_code: int, reason: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.reason = reason
class AlreadyRunning(AgentError):
    """Another agent instance holds the PID lock on this state directory (agent/pidlock.py)."""

    def __init__(self, message: str, *, pid: int | None = None):
        super().__init__(message)
        self.pid = pid
class ControlError(AgentError):
    """A request on the daemon's local control socket was refused or failed.

    ``reason`` is one of ``bad_request``, ``rate_limited``, ``refused``, ``not_available``,
    ``failed``; the console shows the message and keeps the session."""

    def __init__(self, message: str, *, reason: str = "failed"):
        super().__init__(message)
        self.reason = reason


class UpdateError(AgentError):
    """A release offered to the device was refused or its delivery failed (agent/update/).

    ``reason`` is the short word the ``update`` event and the cloud's abort rule count
    (docs/update.md): each subclass has its own, so a field log and a fleet dashboard
    read the same word. Carries the release's version and what was received, never a key."""

    reason = "update"

    def __init__(self, message: str, *, version: str | None = None):
        super().__init__(message)
        self.version = version


class BadReleaseSignature(UpdateError):
    """The manifest is unsigned, or not signed by the release key the device pinned."""

    reason = "signature"


class WrongHash(UpdateError):
    """The artifact's bytes do not hash to the manifest's SHA-256."""

    reason = "hash"


class WrongBoard(UpdateError):
    """The manifest does not list this device's board profile."""

    reason = "board"


class Downgrade(UpdateError):
    """The release is older than the lowest version the device may run (the floor)."""

    reason = "downgrade"


class ReplayedManifest(UpdateError):
    """The manifest belongs to a rollout older than one the device has already seen."""

    reason = "replayed"


class IncompatibleState(UpdateError):
    """The release cannot read the state this device holds (its minimum state version is
    newer than the state's schema)."""

    reason = "state_version"


class BadChunk(UpdateError):
    """A chunk of the artifact is out of order, truncated, or larger than allowed."""

    reason = "chunk"


class OversizedArtifact(UpdateError):
    """The artifact (or the manifest's size) is larger than the manifest or the device allows."""

    reason = "oversized"


class BadManifest(UpdateError):
    """The manifest is malformed: a field missing, of the wrong type, or out of bounds."""

    reason = "manifest"


class BadArtifact(UpdateError):
    """The artifact verified but cannot be installed: not a code tree, or a path escapes it."""

    reason = "artifact"
