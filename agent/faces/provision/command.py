"""``pocket-agent provision``: the production line's one command per unit.

Non-interactive by design: every input is an argument, the result is one JSON line on
stdout (for the factory database) and the exit code says what went wrong
(agent.faces.provision.exitcodes). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from agent import layout
from agent.boardprofile import load_profile
from agent.errors import ConfigError
from agent.faces.provision import exitcodes
from agent.faces.provision import selftest as st
from agent.faces.provision.flow import Provisioner, Request

LOGGER = logging.getLogger(__name__)

DEFAULT_PROFILE = "virtual"
"""The lab's board (and the system test's): a real line names its board with --profile."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit codes: " + "; ".join(f"{c} {d}" for c, d in sorted(exitcodes.DESCRIPTIONS.items()))
                     + " (docs/provisioning.md)")
    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help=f"board profile name or path (default: {DEFAULT_PROFILE}; a name is looked up in "
                             f"{' then '.join(str(d) for d in layout.profile_dirs())})")
    parser.add_argument("--port", default=None, help="the modem's AT port (default: the profile's at_port)")
    parser.add_argument("--device-id", default=None, help="device id = certificate CN (default: pw-<IMEI>)")
    parser.add_argument("--broker", required=True, help="HOST:PORT of the platform's MQTT broker")
    parser.add_argument("--ca", type=Path, required=True, help="the platform CA to pin (PEM)")
    parser.add_argument("--platform-key", type=Path, required=True,
                        help="the platform's Ed25519 signing public key to pin (PEM)")
    parser.add_argument("--release-key", type=Path, default=None,
                        help="the release key's Ed25519 public key to pin (PEM; docs/update.md); "
                             "without it the router refuses every over-the-air update")
    parser.add_argument("--cert", type=Path, default=None, help="install this signed certificate (PEM)")
    parser.add_argument("--label-imei", default=None, help="the IMEI printed on the label; must match the modem")
    parser.add_argument("--force-rekey", action="store_true", help="replace an existing identity with new keys")
    parser.add_argument("--offline", action="store_true", help="skip the broker connection of the self-test")
    parser.add_argument("--key-dir", type=Path, default=layout.KEY_DIR, help=f"the key store ({layout.KEY_DIR})")
    parser.add_argument("--config", type=Path, default=layout.CONFIG_FILE,
                        help=f"agent config path, made a link into the key store ({layout.CONFIG_FILE})")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help=f"the daemon's state (default: {layout.STATE_DIR}; on OpenWrt {layout.OPENWRT_STATE_DIR})")
    parser.add_argument("--status-file", default=str(layout.STATUS_FILE),
                        help=f"the status file the config names ({layout.STATUS_FILE}; empty: none)")
    parser.add_argument("--owner", default=layout.SERVICE_USER,
                        help=f"the user the key store and state belong to (default: {layout.SERVICE_USER} if that "
                             "account exists, else whoever runs provisioning)")
    parser.add_argument("--console-port", default="", help="default: the profile's console_port")
    parser.add_argument("--register-wait", type=float, default=st.REGISTER_WAIT_S,
                        help="seconds to wait for the seed SIM to register")
    parser.add_argument("--modem-timeout", type=float, default=st.MODEM_DEADLINE_S,
                        help="seconds before a silent port counts as 'modem not found'")


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--broker: expected HOST:PORT, got {text!r}")
    return host, int(port)


def _owner(name: str) -> layout.Owner | None:
    """The service user if that account exists; a name given explicitly must exist."""
    owner = layout.service_owner(name)
    if owner is None and name != layout.SERVICE_USER:
        raise ConfigError(f"--owner: no user {name!r} on this system")
    if owner is None:
        LOGGER.info("no user %r here (not installed from a package?): the key store stays with uid %d",
                    name, os.geteuid())
    return owner


def build_request(args: argparse.Namespace) -> Request:
    profile_path = Path(args.profile)
    if not profile_path.suffix:
        profile_path = layout.find_profile(args.profile)
    profile = load_profile(profile_path)
    host, port = _hostport(args.broker)
    return Request(port=args.port or profile.at_port, profile=profile, profile_path=profile_path.resolve(),
                   key_dir=args.key_dir, config_path=args.config,
                   state_dir=args.state_dir or layout.default_state_dir(), owner=_owner(args.owner),
                   status_file=Path(args.status_file) if args.status_file else None,
                   broker_host=host, broker_port=port, ca_file=args.ca,
                   platform_key_file=args.platform_key, release_key_file=args.release_key, device_id=args.device_id, cert_file=args.cert,
                   label_imei=args.label_imei, force_rekey=args.force_rekey, online=not args.offline,
                   console_port=args.console_port, register_wait=args.register_wait,
                   modem_deadline=args.modem_timeout)


def main(args: argparse.Namespace) -> int:
    try:
        req = build_request(args)
    except ConfigError as exc:
        print(json.dumps({"ok": False, "exit_code": exitcodes.USAGE, "reason": "usage", "error": str(exc)}))
        print(f"pocket-agent provision: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    outcome = Provisioner(req).run()
    print(json.dumps(outcome.record, sort_keys=True), flush=True)
    if outcome.exit_code != exitcodes.OK:
        print(f"pocket-agent provision: {exitcodes.DESCRIPTIONS[outcome.exit_code]}: "
              f"{outcome.record.get('error') or 'see selftest in the record'}", file=sys.stderr)
    return outcome.exit_code
