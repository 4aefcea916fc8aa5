"""Low-speed detection: tell a throttled SIM from bad radio, congestion, outage, idle."""
