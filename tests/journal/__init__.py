"""The journal contract: one suite every store passes, and the reference store checked against SQLite."""
