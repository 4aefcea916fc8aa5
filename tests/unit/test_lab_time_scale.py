"""``pocket-lab up --time-scale``: the test labs' faster modem clock (issue 21), and the bad
values it refuses before any namespace is made."""

from __future__ import annotations

import argparse

import pytest

from board.virtual.lab import ctl
from board.virtual.lab.daemon import modem_config_from
from board.virtual.modem.model import ModemConfig


def scale(value: float | None, monkeypatch: pytest.MonkeyPatch, env: str | None = None) -> float:
    if env is None:
        monkeypatch.delenv(ctl.TIME_SCALE_ENV, raising=False)
    else:
        monkeypatch.setenv(ctl.TIME_SCALE_ENV, env)
    return ctl.time_scale(argparse.Namespace(time_scale=value))


def test_default_is_real_modem_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scale(None, monkeypatch) == 1.0


def test_the_flag_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert scale(None, monkeypatch, env="0.2") == 0.2
    assert scale(0.5, monkeypatch, env="0.2") == 0.5


@pytest.mark.parametrize("value", [0.01, 1.5, -1.0])
def test_out_of_range_is_refused(value: float, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ctl.LabError, match="outside"):
        scale(value, monkeypatch)


def test_garbage_in_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ctl.LabError, match="not a number"):
        scale(None, monkeypatch, env="fast")


def test_the_modem_gets_the_scale_and_keeps_the_seed() -> None:
    pool = {"seed": {"iccid": "8981100000000000001", "imsi": "440100000000001",
                     "ki": "00" * 16, "opc": "11" * 16}}
    config = modem_config_from(pool, 0.2)
    assert isinstance(config, ModemConfig) and config.time_scale == 0.2
    assert config.seed.imsi == "440100000000001"
    assert modem_config_from(pool).time_scale == 1.0
