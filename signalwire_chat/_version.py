"""The package version, in one place (read by setup.cfg and the realtime agent string)."""

__version__ = "0.1.0"
