"""The network adapter: the WAN data interface, its address, routes and counters (netlink)."""
