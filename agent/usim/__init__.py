"""The host-side USIM (issue 24): a UICC with the USIM application, answering command
APDUs as a card would, so a module with a remote-SIM interface can use a SIM whose keys
never leave the agent. Pure logic, no I/O: apdu (framing), select and access (the file
commands), usimfs (the files), auth with milenage and sqn (AUTHENTICATE), card (the
entry point). docs/remote-sim.md describes what it serves."""
