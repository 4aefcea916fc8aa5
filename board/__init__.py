"""What the agent runs on: board profiles (``profiles/*.toml``) and the virtual board.

``board.virtual`` is a complete lab (emulated modem, carrier network, reference cloud,
broker). The agent never imports it; it may import ``agent`` for shared contract code
(for example the sealing format), as a cloud or a test harness would.
"""
