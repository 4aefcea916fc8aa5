"""The virtual modem: an EC25-like baseband speaking AT on a pty (docs/vsim-at.md).

``model`` holds what every part shares (latencies, the SIM slot, radio conditions, the
carrier contract, the handler types); ``commands`` is the command table built from the
per-family sets (``data``, ``ident``, ``quectel``, ``simfs``, ``sms``); ``term`` is the
V.250 line editor; ``device`` is the pty and its thread. Arrows point down: ``device``
imports ``commands``, ``commands`` imports the families, all of them import ``model``.
"""
