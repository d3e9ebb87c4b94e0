"""The ways in: the command line, the daemon and its HTTP face, the config, the wiring, the demo."""
