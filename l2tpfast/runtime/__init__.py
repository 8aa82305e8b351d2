"""The I/O shell: sockets, event loops and threads around the sans-IO core (STYLE.md 1)."""
