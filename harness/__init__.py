"""Stand up, verify and tear down the reference EKS platform; gate its layers offline."""

__version__ = "0.1.0"
