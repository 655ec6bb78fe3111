"""Local training: the PyTorch trainer and data splits (digits, MNIST), and the pluggable
training entry point of ``secagg participant --train``."""
