"""squeezelab: a laboratory for compact convolutional networks."""

__version__ = "0.1.0"
