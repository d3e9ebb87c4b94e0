"""The protocol core, in process and without I/O: the tables, the transition function, the rules."""
