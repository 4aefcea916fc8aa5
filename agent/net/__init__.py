"""The network adapter: the WAN data interface, its address, routes and counters (netlink).

Importing this package defers pyroute2's package ``__init__`` (agent/net/pyroute2_deferred.py):
the modules below import the pyroute2 submodules they use, and the daemon does not pay for
the netlink families it never speaks (docs/footprint.md).
"""

from agent.net.pyroute2_deferred import defer_package_init

defer_package_init()
