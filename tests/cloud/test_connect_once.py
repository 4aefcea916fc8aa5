"""``connect_once``: the one-shot MQTT probe factory provisioning runs after installing a
certificate, against a real mosquitto with TLS.

It also runs under paho-mqtt 1.6.1 (``make test-oldest``: packaging/oldest-deps.txt), the version
Debian 12 and OpenWrt ship: the probe once built its client with 2.x's
``CallbackAPIVersion`` directly, so on 1.6.1 the module, and with it the whole daemon,
failed to import.
"""

from __future__ import annotations

from agent.cloud.connect_once import connect_once
from board.virtual.cloud.pki import LabPki
from tests.cloud.conftest import Broker, free_port

PROBE_TIMEOUT_S = 60.0
"""Long enough that no loaded machine turns a refusal into a timeout; a run that did wait
it out still fails, on what the probe says."""


def test_the_broker_accepts_the_device_certificate(broker: Broker, pki: LabPki) -> None:
    dev = pki.devices["dev-a"]
    result = connect_once(broker.host, broker.port, ca=pki.ca_cert, cert=dev.cert, key=dev.key,
                          client_id="dev-a", timeout=10)
    assert result.ok, result.detail


def test_a_certificate_from_another_ca_is_refused_with_a_reason(broker: Broker, pki: LabPki) -> None:
    """Refused at once, not after the timeout: under TLS 1.3 the broker's alert arrives on
    the first read, which on paho 1.6.1 killed the network thread silently (the probe then
    waited out its timeout) until connect_once used paho_compat.loop_start."""
    result = connect_once(broker.host, broker.port, ca=pki.ca_cert, cert=pki.foreign_device_cert,
                          key=pki.foreign_device_key, client_id="dev-a", timeout=PROBE_TIMEOUT_S)
    assert not result.ok
    assert result.detail  # what went wrong, for provisioning's JSON record
    # The refusal itself, not the probe waiting out its timeout (the paho 1.6.1 bug ended
    # in exactly that: "no CONNACK within ..."): told apart by what it says, not by time.
    assert "no CONNACK" not in result.detail, result.detail


def test_no_broker_is_a_result_not_an_exception(pki: LabPki) -> None:
    dev = pki.devices["dev-a"]
    result = connect_once("127.0.0.1", free_port(), ca=pki.ca_cert, cert=dev.cert, key=dev.key,
                          client_id="dev-a", timeout=5)
    assert not result.ok
    assert "refused" in result.detail.lower() or "errno" in result.detail.lower(), result.detail
