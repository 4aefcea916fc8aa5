"""Start-up on a remote-SIM board: the seed card and the kept cards back in the host slots.

A vSIM board boots from the seed SIM in the modem's own slot and finds the assigned SIM
still in its vSIM slot after a restart. A remote-SIM module has no card at all
(docs/remote-sim.md), so before the supervisor's usual start-up (resume a swap, resume
the SIM in use, or attach on the seed) the host slots are filled from what the agent
holds, encrypted:

1. the seed SIM, from its sealed envelope (``[cloud] seed_sim``: written at provisioning
   by the factory, encrypted to this device and signed by the platform, as an
   assignment is), into the board's seed slot;
2. every card the previous run staged (agent/cloud/cardvault.py: profile and SQN state,
   encrypted at rest), into its slot;
3. the card that was in the module's reader is adopted without a remove/insert (the
   module still holds it, and the data context a restart must not break runs on it);
   with none, the seed card is inserted: the module reads it and attaches.

A kept card that does not open (another device's file, flash damage) is dropped with a
logged reason and the slot stays empty: the swap machine then rolls back or starts from
the seed, as when a vSIM slot lost its profile.
"""

from __future__ import annotations

import logging
from pathlib import Path

from agent.cloud import sealing
from agent.cloud.cardvault import CardVault, open_seed
from agent.config import AgentConfig
from agent.errors import ConfigError, SealError
from agent.modem.rsimslots import HostSlots
from agent.sim import SimProfile
from agent.usim.sqn import SqnState

LOGGER = logging.getLogger(__name__)

VAULT_DIR = "cards"
"""The kept cards' directory inside the state directory."""


def vault_for(cfg: AgentConfig, state_dir: Path) -> CardVault:
    return CardVault(state_dir / VAULT_DIR, sealing.load_private_x25519(cfg.cloud.sealing_key), cfg.device_id)


async def restore(slots: HostSlots, cfg: AgentConfig, state_dir: Path, seed_slot: int) -> CardVault:
    """Fill ``slots`` (see the module doc) and attach the vault as their keeper."""
    if cfg.cloud.seed_sim is None:
        raise ConfigError("a remote-SIM board needs [cloud] seed_sim: the sealed seed profile (docs/remote-sim.md)")
    vault = vault_for(cfg, state_dir)
    sealing_key = sealing.load_private_x25519(cfg.cloud.sealing_key)
    seed = open_seed(cfg.cloud.seed_sim, device_id=cfg.device_id, sealing_key=sealing_key,
                     platform_public=sealing.load_public_ed25519(cfg.cloud.platform_key))
    kept_seed = _open(vault, seed_slot)
    same_seed = kept_seed is not None and kept_seed[0].iccid == seed.iccid
    slots.stage(seed_slot, seed, kept_seed[1] if kept_seed is not None and same_seed else None, keep=False)
    if not same_seed:  # its SQN state is kept from now on, beside the other cards'
        vault.keep(seed_slot, seed, None)
    del seed, kept_seed
    for slot in vault.slots():
        if slot == seed_slot:
            continue
        held = _open(vault, slot)
        if held is not None:
            slots.stage(slot, held[0], held[1], keep=False)
        del held
    slots.keeper = vault
    active, iccid = vault.active()
    if active is not None and slots.adopt(active) and slots.active_profile() == (active, iccid):
        LOGGER.info("remote SIM: host slot %d (%s) adopted: the module's reader still holds it", active, iccid)
    else:
        await slots.select(seed_slot)
    return vault


def _open(vault: CardVault, slot: int) -> tuple[SimProfile, SqnState | None] | None:
    """``slot``'s kept card, or None (none kept, or one that does not open: dropped)."""
    try:
        return vault.open(slot)
    except SealError as exc:
        LOGGER.error("remote SIM: kept card of slot %d dropped: %s", slot, exc)
        vault.forget(slot)
        return None
