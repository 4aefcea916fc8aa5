"""Is the internet reachable over the current bearer? One UDP echo, answered or not.

Used to verify a new SIM before a swap commits: an attached SIM with an address can still
carry nothing (a carrier that authenticates but does not route, a stale route), and only
a packet that went out and came back proves otherwise. Three tries of one small datagram
(about 100 bytes in all, billed to the new SIM) keep the check cheap.
"""

from __future__ import annotations

import logging
import os
import socket

LOGGER = logging.getLogger(__name__)

ECHO_TRIES = 3
ECHO_WAIT_S = 0.5
"""Per try: an LTE round trip is 20-80 ms; half a second allows a cold NAT and a first
bearer packet, and three tries ride out one lost datagram."""


def udp_echo(host: str, port: int, tries: int = ECHO_TRIES, wait_s: float = ECHO_WAIT_S) -> bool:
    """True if the reflector at ``host:port`` echoed one of ``tries`` random payloads."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait_s)
        for _ in range(tries):
            token = b"PWVR" + os.urandom(8)
            try:
                sock.sendto(token, (host, port))
                while True:
                    data, _ = sock.recvfrom(2048)
                    if data == token:
                        return True
            except TimeoutError:
                continue
            except OSError as exc:  # no route yet, network unreachable
                LOGGER.debug("echo to %s:%d failed: %s", host, port, exc)
                continue
    return False
