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
