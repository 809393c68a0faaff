"""Camera Hub: the open backend for a city's public-security camera network."""

__version__ = "0.1.0"
