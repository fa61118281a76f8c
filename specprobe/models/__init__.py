"""Checkpoint adapters: each turns one family's files into a :class:`ProbeTarget`."""
