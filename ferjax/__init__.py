"""ferjax: a fast JAX/Flax reimplementation of a FERPlus facial-emotion-recognition study."""
__version__ = "0.1.0"
