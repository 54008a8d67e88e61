"""ganbench: train the ProGAN -> StyleGAN3 family and measure them with the standard metrics suite."""

__version__ = "0.1.0"
