"""The virtual board: a real-enough world on one Linux machine. See docs/virtual-board.md."""
