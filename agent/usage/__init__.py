"""Usage metering: counter deltas to exact per-SIM, per-JST-day records, and their journal."""
