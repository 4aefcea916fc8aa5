"""Faces: the ways people use the agent (command line, technician console, factory provisioning)."""
