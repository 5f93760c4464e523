"""Algorithms, one module each; `get(name)` finds one by name."""
