"""Export a trained model to run where JAX is absent: a TensorFlow SavedModel or a TFLite file.

The route is `jax.experimental.jax2tf.convert` (still shipped with jax 0.10; it now always
uses native serialization: the JAX function is lowered to StableHLO and embedded in the
SavedModel as one `XlaCallModule` op, the parameters as constants). The batch dimension is
polymorphic: any N works.

Input: float32 (N, S, S, C) images preprocessed exactly as in training (S = the run's image
size, 64; C = the channels of its feature set, O/S/L); output: float32 (N, 8) logits, classes
in `ferjax.classes.CLASS_NAMES` order. The SavedModel has a second signature, "faces", that
also runs the preprocessing (it is written in TensorFlow): uint8 (N, 48, 48) grayscale face
crops -> {"logits", "probabilities"}.

The exported graph uses the "lax" convolution (XLA's convolution); both conv
implementations own the same parameters, so any checkpoint exports. The "matmul" variant
does not convert to TFLite with a polymorphic batch: its im2col slices become dynamic
gathers, which the TFLite converter rejects ("vhlo.dynamic_gather_v1 ... not part of the
vhlo support yet").

`out` is a directory: savedmodel writes the SavedModel there, tflite writes out/model.tflite.
Both write out/ferjax_export.json (classes, feature set, input shape, source checkpoint).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

FORMATS = ("savedmodel", "tflite")
METADATA = "ferjax_export.json"
TFLITE_NAME = "model.tflite"


class ExportError(ValueError):
    pass


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        raise ExportError(f"output directory {out} already exists and is not empty; "
                          f"choose a new one or remove it")


def _load(checkpoint):
    from ferjax.train.checkpoint import load_run
    from ferjax.features import num_channels
    from ferjax.models import inference_model
    if checkpoint is None:
        from ferjax.assets import shipped_checkpoint
        checkpoint = shipped_checkpoint()
    from ferjax import class_bias
    from ferjax.train.checkpoint import best_dir
    cfg, arrays, meta = load_run(checkpoint)
    meta = {**meta, "class_bias": class_bias.load(best_dir(checkpoint), meta["epoch"])}
    # batch norm folded into the convolutions; "lax" (nn.Conv) converts most simply to TF
    model, params = inference_model(cfg.model.name, arrays["params"], arrays.get("batch_stats"), "lax",
                                    cfg.model.light_layers)
    size, channels = cfg.data.image_size, num_channels(cfg.data.features)
    return cfg, model, params, meta, str(checkpoint), size, channels


def tf_functions(model, params, feature_set: str, image_size: int, channels: int, flip: bool = False,
                 class_bias=None):
    """(logits_fn, faces_fn): tf.functions of the model, and of preprocessing + model; with
    flip, faces_fn's probabilities average each face's and its mirror's, and a class bias
    (ferjax/class_bias.py) reweighs them, as ferjax does."""
    import jax
    import numpy as np
    import tensorflow as tf
    from jax.experimental import jax2tf

    from ferjax.classes import IMAGE_SIDE
    from ferjax.data.pipeline import preprocess_op

    params = jax.tree.map(np.asarray, params)
    logits_tf = jax2tf.convert(lambda x: model.apply({"params": params}, x, train=False)[0],
                               polymorphic_shapes=[f"(b, {image_size}, {image_size}, {channels})"],
                               with_gradient=False)
    spec = tf.TensorSpec([None, image_size, image_size, channels], tf.float32, name="images")

    @tf.function(autograph=False, input_signature=[spec])
    def logits_fn(images):
        return {"logits": tf.identity(logits_tf(images), name="logits")}

    preprocess = preprocess_op(feature_set, image_size, augment=False)

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec([None, IMAGE_SIDE, IMAGE_SIDE], tf.uint8, name="faces")])
    def faces_fn(faces):
        images = preprocess({"image": faces})["image"]
        logits = logits_fn(images)["logits"]
        probs = tf.nn.softmax(logits, axis=-1)
        if flip:
            probs = 0.5 * (probs + tf.nn.softmax(logits_fn(images[:, :, ::-1])["logits"], axis=-1))
        if class_bias is not None:
            probs = probs * tf.exp(tf.constant(class_bias, tf.float32))
            probs = probs / tf.reduce_sum(probs, axis=-1, keepdims=True)
        return {"logits": logits, "probabilities": probs}

    return logits_fn, faces_fn


def _save(path: Path, logits_fn, faces_fn=None) -> None:
    import tensorflow as tf
    module = tf.Module()
    module.logits = logits_fn
    signatures = {"serving_default": logits_fn}
    if faces_fn is not None:
        module.faces = faces_fn
        signatures["faces"] = faces_fn
    tf.saved_model.save(module, str(path), signatures=signatures)


def export(checkpoint, out, fmt: str = "savedmodel") -> Path:
    """Writes the model of `checkpoint` (a run directory; None: the shipped model) to `out`."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    out = Path(out)
    _check_out(out)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ferjax.classes import CLASS_NAMES

    cfg, model, params, meta, source, size, channels = _load(checkpoint)
    cb = meta["class_bias"]
    logits_fn, faces_fn = tf_functions(model, params, cfg.data.features, size, channels, cfg.eval_flip,
                                       None if cb is None else cb.vector)
    info = {"format": fmt, "checkpoint": source, "model": cfg.model.name,
            "features": cfg.data.features, "epoch": meta.get("epoch"),
            "input": {"name": "images", "dtype": "float32", "shape": [None, size, size, channels],
                      "preprocessing": "ferjax.data.pipeline.preprocess_numpy(faces_uint8_48x48, "
                                       f"{cfg.data.features!r}, {size})"},
            "output": {"name": "logits", "dtype": "float32", "shape": [None, len(CLASS_NAMES)]},
            "classes": list(CLASS_NAMES),
            # added to log-probabilities by the "faces" signature; apply it to "logits" yourself
            "class_bias": None if cb is None else cb.bias}
    if fmt == "savedmodel":
        info["signatures"] = {"serving_default": "images -> logits",
                              "faces": "uint8 (N, 48, 48) faces -> logits, probabilities"}
    else:
        info["file"] = TFLITE_NAME

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)                # mkdtemp's 0700 -> the usual directory mode
    try:
        if fmt == "savedmodel":
            _save(staging, logits_fn, faces_fn)
        else:
            import tensorflow as tf
            with tempfile.TemporaryDirectory() as tmp:
                _save(Path(tmp), logits_fn)
                converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
                flatbuffer = converter.convert()
            (staging / TFLITE_NAME).write_bytes(flatbuffer)
        (staging / METADATA).write_text(json.dumps(info, indent=2) + "\n")
        _check_out(out)                          # nothing appeared meanwhile
        if out.is_dir():
            out.rmdir()
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
