"""Turn uploaded bytes into pages of text and chunks: pure functions, no DB, no network."""
