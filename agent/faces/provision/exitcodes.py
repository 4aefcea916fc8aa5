"""Exit codes of ``pocket-agent provision``: distinct, stable, documented in docs/provisioning.md.

A production-line script branches on these, so a number never changes meaning. 2 is
argparse's own code for a usage error, kept so that every usage error has one code.
"""

from __future__ import annotations

OK = 0
"""Provisioned (or already provisioned with the same values) and the self-test passed."""
USAGE = 2
"""Bad arguments or unreadable input files (CA, platform key, board profile)."""
MODEM_NOT_FOUND = 3
"""No modem answered on the port within the deadline."""
SELFTEST_FAILED = 4
"""The identity is in place but a self-test check failed (or the IMEI label differs)."""
CERT_MISMATCH = 5
"""The certificate given is for another key or device, from another CA, or not valid now."""
ALREADY_PROVISIONED = 6
"""This unit already has an identity with a different device id or IMEI (use --force-rekey)."""
STORAGE = 7
"""The key directory or configuration cannot be written (flash, permissions)."""

DESCRIPTIONS = {OK: "ok", USAGE: "usage error", MODEM_NOT_FOUND: "modem not found",
                SELFTEST_FAILED: "self-test failed", CERT_MISMATCH: "certificate mismatch",
                ALREADY_PROVISIONED: "already provisioned with different values", STORAGE: "storage error"}
