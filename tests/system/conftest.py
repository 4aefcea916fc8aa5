"""The system test's one rig: one image (cached), one lab, one boot, for the whole module.

Root only (namespaces, nspawn, the lab). Locally a missing tool or root skips with the
reason; under CI (``CI=true``) that is a failure: ``make test`` installs every tool.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.boardprofile import load_profile
from agent.faces.provision.command import configure as provision_options
from tests.conftest import need_root, need_tool
from tests.system import image as image_mod
from tests.system import rig
from tests.system.container import Container

TOOLS = ("mmdebstrap", "systemd-nspawn", "nsenter", "openssl", "dpkg-deb", "mosquitto", "nft", "tc", "ip")


def default_profile_name() -> str:
    """The board profile ``pocket-agent provision`` uses when the line gives none."""
    import argparse

    parser = argparse.ArgumentParser()
    provision_options(parser)
    return str(parser.get_default("profile"))


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.System]:
    need_root()
    for tool in TOOLS:
        need_tool(tool)
    timings: dict[str, float] = {}
    started = time.monotonic()
    image = image_mod.ensure()
    timings["image_s"] = image.seconds
    timings["image_cold"] = float(image.built)
    work = tmp_path_factory.mktemp("system")
    factory = work / "factory"
    deb = rig.build_deb(factory)
    pki = Path(rig.LAB_DIR) / "pki"
    rig.lab("down", check=False)
    t = time.monotonic()
    up = rig.lab("up", "--no-agent", check=False, timeout=240)
    if up.returncode != 0:
        rig.lab("down", check=False)
        raise AssertionError(f"step 'lab up --no-agent' failed:\n{up.stdout}\n{up.stderr}")
    timings["lab_up_s"] = time.monotonic() - t
    container: Container | None = None
    try:
        status = rig.lab_json("status")
        # The station's copies of the platform's pins, named as docs/provisioning.md names them.
        (factory / "platform-ca.pem").write_bytes((pki / "ca.pem").read_bytes())
        (factory / "platform.pub").write_bytes((pki / "platform.pub").read_bytes())
        profile = load_profile(default_profile_name())
        modem = rig.give_to_dialout(str(rig.LAB_DIR / "modem.pty"))
        console = rig.give_to_dialout(status["console"]["device_pty"])
        container = Container(image.root, work / "container", netns=Path("/run/netns") / status["namespaces"]["device"],
                              binds={modem: profile.at_port, console: profile.console_port,
                                     str(factory): rig.FACTORY_INSIDE})
        timings["boot_s"] = container.boot()
        system = rig.System(container, status, profile, factory, deb)
        system.facts["timings"] = timings
        yield system
    finally:
        timings["total_s"] = time.monotonic() - started
        if container is not None and container.leader is not None:
            dump = container.run("journalctl --no-pager -o short-monotonic", timeout=60)
            (work / "journal.txt").write_text(dump.stdout)
            print(f"\nsystem test: container journal kept in {work / 'journal.txt'}")
            container.stop()
        rig.lab("down", check=False)
        print("system test wall times: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
