"""The carrier side of the virtual board: network namespaces, the carrier network that
attaches SIMs and polices them, the internet's services and the lab's traffic, fault
injection and chaos measurements, the technician cable, and the trace recorder.
Imports the modem's ``model`` (its carrier contract), never the other way round."""
