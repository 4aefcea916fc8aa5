"""Factory provisioning (``pocket-agent provision``) and ``pocket-agent identity``.

docs/provisioning.md is the line engineer's guide: the sequence, the exit codes, a
script for many units in parallel.
"""
