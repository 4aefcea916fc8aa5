"""The fleet simulator: the agent's real pacing code for 100,000 simulated devices against a platform model (docs/fleet.md)."""
