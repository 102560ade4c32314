"""Data Squirrel: offline file synchronization with vector time pairs (Tra)."""

__version__ = "0.1.0"
