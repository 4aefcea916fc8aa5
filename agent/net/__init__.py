"""The network adapter: the WAN data interface, its address, routes and counters, and the
router's flows, all over netlink sockets the agent speaks itself (agent/net/rtnl.py,
agent/net/conntrack.py): no netlink library in the serving process (docs/footprint.md).
"""
