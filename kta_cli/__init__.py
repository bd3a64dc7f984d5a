"""kta: a command-line experiment runner for knowledge transfer and adaptation."""

__version__ = "0.1.0"
