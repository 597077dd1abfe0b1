"""ferjax: a fast JAX/Flax reimplementation of a FERPlus facial-emotion-recognition study."""
__version__ = "0.1.0"


def __getattr__(name: str):
    """Lazy exports: `import ferjax` stays light (no JAX/TF) until ferjax.Predictor is used."""
    if name in ("Predictor", "Face"):
        from ferjax import predict
        return getattr(predict, name)
    raise AttributeError(f"module 'ferjax' has no attribute {name!r}")
