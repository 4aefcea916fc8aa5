"""The core: the supervisor that wires adapters to logic and owns the lifecycle."""
