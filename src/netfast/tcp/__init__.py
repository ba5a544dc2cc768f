"""TCP, sans-IO: PCB lookup, initial sequence numbers, SYN cookies and the TCP state machine."""
