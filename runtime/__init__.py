"""Parley's runtime: runs an exported gpt-oss model folder for game NPCs. Never imports torch."""

__version__ = "0.1.0"
