"""The protocol core: the values, the rules and the step tables. Standard library only, no I/O."""
