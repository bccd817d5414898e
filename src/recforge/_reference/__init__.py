"""Slow, readable NumPy implementations: the specification of each kernel. Used by tests only."""
