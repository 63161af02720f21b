"""The outcome log's readers: cursors, watchers and key status (the spool writes the log; delivery decides it)."""
