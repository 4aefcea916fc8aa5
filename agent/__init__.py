"""pocket-agent: the device agent of a cloud-SIM pocket WiFi router.

Layering (arrows point down, see docs/architecture.md):
faces (cli, console, provision) -> core (supervisor) -> logic (parsers, detector,
meter) and adapters (modem, net, cloud). Nothing here imports ``board.virtual``.
"""

__version__ = "0.1.0"
