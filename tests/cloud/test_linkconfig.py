"""The link's settings come from the agent's [cloud] table in one place (CloudConfig.from_section)."""

from __future__ import annotations

from pathlib import Path

from agent.cloud.linkconfig import WATCHDOG_PER_KEEPALIVE, CloudConfig
from agent.config import CloudSection


def section(keepalive_s: int = 300) -> CloudSection:
    d = Path("/etc/pocket-agent")
    return CloudSection(host="mqtt.example", port=8883, ca=d / "ca.pem", cert=d / "cert.pem", key=d / "key.pem",
                        sealing_key=d / "sealing.key", platform_key=d / "platform.pub", keepalive_s=keepalive_s)


def test_every_field_of_the_section_reaches_the_link() -> None:
    c = CloudConfig.from_section("dev-a", section(120))
    assert (c.device_id, c.host, c.port, c.keepalive) == ("dev-a", "mqtt.example", 8883, 120)
    assert (c.ca_file, c.cert_file, c.key_file) == (Path("/etc/pocket-agent/ca.pem"),
                                                    Path("/etc/pocket-agent/cert.pem"),
                                                    Path("/etc/pocket-agent/key.pem"))
    assert c.sealing_key_file.name == "sealing.key" and c.platform_key_file.name == "platform.pub"


def test_the_watchdog_follows_the_keepalive() -> None:
    assert CloudConfig.from_section("dev-a", section(300)).watchdog_idle == 1200.0
    assert CloudConfig.from_section("dev-a", section(60)).watchdog_idle == 60 * WATCHDOG_PER_KEEPALIVE


def test_overrides_replace_any_field() -> None:
    c = CloudConfig.from_section("dev-a", section(), first_delay_max=0.1, watchdog_idle=5.0)
    assert c.first_delay_max == 0.1 and c.watchdog_idle == 5.0 and c.keepalive == 300
