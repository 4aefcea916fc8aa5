"""The reference cloud of the virtual board: the cloud itself (``reference``), what it
received (``events``), the SIM pool file, the lab PKI and the mosquitto broker."""
