"""The command-line face: ``pocket-agent`` and its one-shot tools, one module each.

``main`` holds the table of subcommand names (the one place a name is added) and the
dispatcher; ``run`` is the daemon under a service manager; ``at``, ``decode``, ``replay``,
``record`` and ``uci2toml`` are the technician's and the init script's tools. Each module
only reads arguments, calls the logic that owns the capability (``agent/modem/``,
``agent/health/``, ``agent/uciconf.py``) and prints; the logic stays where the daemon and
the console use it too, so a tool never has a reading of its own.
"""
