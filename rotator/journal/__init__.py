"""The journal: what rotator knows, kept across crashes: a codec, the SQLite and in-memory stores."""
