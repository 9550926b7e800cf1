"""Experiments kept with their results; not part of kdlib (see README.md here)."""
