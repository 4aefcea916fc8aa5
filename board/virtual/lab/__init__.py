"""``pocket-lab``: the command line (``cli``, also ``python -m board.virtual.lab``), the
controller that brings the lab up and down (``ctl``), its daemon (``daemon``), the
carrier's SMS (``sms``), the technician console's cable (``console``) and the demo.
The top of the virtual board: it imports ``modem``, ``network`` and ``cloud``."""
