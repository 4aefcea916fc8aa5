"""A SIM's plan as its contract writes it, and the allowance left under each rule (issue 22)."""
