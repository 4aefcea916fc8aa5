"""``pocket-agent provision``: the production line's one command per unit.

Non-interactive by design: every input is an argument, the result is one JSON line on
stdout (for the factory database) and the exit code says what went wrong
(agent.faces.provision.exitcodes). Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from agent.boardprofile import load_profile
from agent.errors import ConfigError
from agent.faces.provision import exitcodes
from agent.faces.provision import selftest as st
from agent.faces.provision.flow import Provisioner, Request

LOGGER = logging.getLogger(__name__)

DEFAULT_CONFIG = Path("/etc/pocket-agent/agent.toml")
DEFAULT_STATE_DIR = Path("/etc/pocket-agent/state")
"""On flash: OpenWrt's /var is a tmpfs, and the journal and anti-replay state must survive a reboot."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("exit codes: " + "; ".join(f"{c} {d}" for c, d in sorted(exitcodes.DESCRIPTIONS.items()))
                     + " (docs/provisioning.md)")
    parser.add_argument("--profile", default="virtual", help="board profile name or path (default: virtual)")
    parser.add_argument("--port", default=None, help="the modem's AT port (default: the profile's at_port)")
    parser.add_argument("--device-id", default=None, help="device id = certificate CN (default: pw-<IMEI>)")
    parser.add_argument("--broker", required=True, help="HOST:PORT of the platform's MQTT broker")
    parser.add_argument("--ca", type=Path, required=True, help="the platform CA to pin (PEM)")
    parser.add_argument("--platform-key", type=Path, required=True,
                        help="the platform's Ed25519 signing public key to pin (PEM)")
    parser.add_argument("--cert", type=Path, default=None, help="install this signed certificate (PEM)")
    parser.add_argument("--label-imei", default=None, help="the IMEI printed on the label; must match the modem")
    parser.add_argument("--force-rekey", action="store_true", help="replace an existing identity with new keys")
    parser.add_argument("--offline", action="store_true", help="skip the broker connection of the self-test")
    parser.add_argument("--key-dir", type=Path, default=None, help="default: the profile's key_dir")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"agent config path ({DEFAULT_CONFIG})")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
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


def build_request(args: argparse.Namespace) -> Request:
    profile = load_profile(args.profile)
    profile_path = Path(args.profile)
    if not profile_path.suffix:
        from agent.boardprofile import PROFILES_DIR
        profile_path = PROFILES_DIR / f"{args.profile}.toml"
    host, port = _hostport(args.broker)
    return Request(port=args.port or profile.at_port, profile=profile, profile_path=profile_path.resolve(),
                   key_dir=args.key_dir or Path(profile.key_dir), config_path=args.config,
                   state_dir=args.state_dir, broker_host=host, broker_port=port, ca_file=args.ca,
                   platform_key_file=args.platform_key, device_id=args.device_id, cert_file=args.cert,
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
