"""Atlas: train robot VLA policies and check training setups."""

__version__ = "0.1.0"
