"""Porcelain: one module per high-level command, composing plumbing and returning data."""
