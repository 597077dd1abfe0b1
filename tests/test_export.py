"""Export to a TensorFlow SavedModel and to TFLite: the exported models reproduce ferjax's
logits on real preprocessed inputs (synthetic faces through preprocess_numpy), for any batch."""
import json

import jax
import numpy as np
import pytest
import tensorflow as tf

from ferjax import cli
from ferjax.data.pipeline import preprocess_numpy
from ferjax.train.checkpoint import load_run
from ferjax.export import METADATA, TFLITE_NAME, ExportError, export
from ferjax.models import build_model

from test_predict import _tiny_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory)     # trained once per session, shared with test_predict


@pytest.fixture(scope="module")
def reference(tiny_run):
    """(uint8 faces, preprocessed inputs, ferjax logits) of 10 synthetic faces."""
    from ferjax.data.synthetic import make_split
    cfg, arrays, _ = load_run(tiny_run)
    faces = make_split(np.random.default_rng(1), 2, "e").images[:10]
    x = preprocess_numpy(faces, cfg.data.features, cfg.data.image_size)
    model = build_model(cfg.model.name, cfg.model.conv)
    logits = np.asarray(jax.jit(lambda p, x: model.apply({"params": p}, x)[0])(arrays["params"], x))
    return faces, x, logits


def test_savedmodel_matches_ferjax(tiny_run, reference, tmp_path):
    faces, x, logits = reference
    out = export(tiny_run, tmp_path / "sm", "savedmodel")
    info = json.loads((out / METADATA).read_text())
    assert info["input"]["shape"] == [None, 64, 64, 2] and info["features"] == "O-L"
    assert info["classes"][0] == "neutral" and len(info["classes"]) == 8
    loaded = tf.saved_model.load(str(out))
    serve = loaded.signatures["serving_default"]
    for n in (10, 3, 1):                                     # polymorphic batch
        got = serve(images=tf.constant(x[:n]))["logits"].numpy()
        np.testing.assert_allclose(got, logits[:n], atol=1e-4, rtol=0)
    # the second signature preprocesses uint8 48x48 faces itself
    res = loaded.signatures["faces"](faces=tf.constant(faces))
    np.testing.assert_allclose(res["logits"].numpy(), logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose(res["probabilities"].numpy(), jax.nn.softmax(logits), atol=1e-5)


# tf.lite.Interpreter warns that it moves to the ai-edge-litert package (LiteRT); it still works.
@pytest.mark.filterwarnings("ignore:(?s).*tf.lite.Interpreter is deprecated")
def test_tflite_matches_ferjax(tiny_run, reference, tmp_path):
    _, x, logits = reference
    assert cli.main(["export", "--checkpoint", str(tiny_run), "--format", "tflite",
                     str(tmp_path / "lite")]) == 0
    path = tmp_path / "lite" / TFLITE_NAME
    assert json.loads((tmp_path / "lite" / METADATA).read_text())["format"] == "tflite"
    interp = tf.lite.Interpreter(model_path=str(path))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert list(inp["shape_signature"]) == [-1, 64, 64, 2]
    for n in (10, 4):
        interp.resize_tensor_input(inp["index"], [n, 64, 64, 2])
        interp.allocate_tensors()
        interp.set_tensor(inp["index"], x[:n])
        interp.invoke()
        np.testing.assert_allclose(interp.get_tensor(out["index"]), logits[:n], atol=1e-4, rtol=0)


def test_export_errors(tiny_run, tmp_path, capsys):
    with pytest.raises(ExportError, match="unknown export format 'onnx'"):
        export(tiny_run, tmp_path / "x", "onnx")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not empty"):
        export(tiny_run, busy, "savedmodel")
    assert cli.main(["export", "--checkpoint", str(tiny_run), str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (busy / "keep.txt").read_text() == "mine"          # left untouched
    assert cli.main(["export", "--checkpoint", str(tmp_path / "nowhere"), str(tmp_path / "y")]) == 2
    assert not (tmp_path / "y").exists()
