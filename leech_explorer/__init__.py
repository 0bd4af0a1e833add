"Spherical Leech Quantization (Λ24-SQ): Golay code, Leech lattice, exact quantizer, tokenizer and generator."
__version__ = "0.1.0"
