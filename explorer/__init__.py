"""Latent Explorer. Importing this package must stay cheap and Qt-free."""

__version__ = "0.1.0"
