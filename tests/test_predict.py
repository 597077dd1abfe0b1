"""Face detection, prediction and the `ferjax predict` command, on images the tests make.

Detection is tested on a real photo (matplotlib's bundled grace_hopper.jpg, a dependency's
sample data) and on built-in synthetic faces, which the Haar cascades do fire on. The
prediction tests use a tiny model trained once for the session (its predictions are not
meaningful; only shapes, routing, batching and consistency are checked).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferjax import cli
from ferjax.classes import CLASS_NAMES
from ferjax.predict.detect import crop_face, detect_faces, find_faces, square_box
from ferjax.predict import Face, Predictor, bucket_size, run_predict

REPO = Path(__file__).resolve().parents[1]


def _tiny_run(tmp_path_factory) -> Path:
    """A one-epoch light O-L run on a few synthetic faces, shared by this session's modules."""
    from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
    from ferjax.data.synthetic import make_synthetic
    from ferjax.train.loop import train
    root = tmp_path_factory.getbasetemp() / "ferjax_tiny_run"
    if not (root / "best").is_dir():
        cfg = RunConfig(data=DataConfig(features="O-L", batch_size=32, synthetic_per_class=8),
                        model=ModelConfig(name="light"), loss=LossConfig(lam=0.1), epochs=1, seed=0)
        train(cfg, root, dataset=make_synthetic(per_class=8, seed=0), progress=False,
              log=lambda *_: None)
    return root


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    return _tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_checkpoint(tiny_run)


@pytest.fixture(scope="module")
def synth_faces():
    """8 built-in faces (48x48 uint8), drawn at the expression strength the detector's
    thresholds below were set on (the quick profile's faces exaggerate mouths more)."""
    from ferjax.data import synthetic
    saved = synthetic.GAIN, synthetic.INTENSITY_MIN
    synthetic.GAIN, synthetic.INTENSITY_MIN = 1.5, 0.5
    try:
        return synthetic.make_split(np.random.default_rng(0), 1, "t").images
    finally:
        synthetic.GAIN, synthetic.INTENSITY_MIN = saved


@pytest.fixture(scope="module")
def hopper():
    path = Path(cv2.__file__).parents[1] / "matplotlib" / "mpl-data" / "sample_data" / "grace_hopper.jpg"
    if not path.exists():
        pytest.skip("matplotlib's grace_hopper.jpg sample photo is not installed")
    return cv2.imread(str(path))


HOPPER_FACE = (150, 102, 230, 230)     # where the cascades put her face in the original


def paste(canvas, img, x, y):
    canvas[y:y + img.shape[0], x:x + img.shape[1]] = img


def iou(a, b):
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


def assert_same_faces(a: list[Face], b: list[Face], atol=1e-5):
    """Same boxes and probabilities up to float rounding (batch composition may change it)."""
    assert [f.box for f in a] == [f.box for f in b]
    for fa, fb in zip(a, b):
        np.testing.assert_allclose([fa.probabilities[c] for c in CLASS_NAMES],
                                   [fb.probabilities[c] for c in CLASS_NAMES], atol=atol)


def synth_scene(faces, places=((20, 30, 3), (250, 40, 2), (420, 200, 4)), shape=(400, 640)):
    """Synthetic faces upscaled x s and pasted at (x, y); returns (gray canvas, true boxes)."""
    canvas = np.full(shape, 140, np.uint8)
    for k, (x, y, s) in enumerate(places):
        paste(canvas, cv2.resize(faces[k], None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC), x, y)
    return canvas, [(x, y, 48 * s, 48 * s) for x, y, s in places]


# ------------------------------------------------------------------------- detection

def test_detects_a_real_face_at_two_positions_and_scales(hopper):
    canvas = np.full((700, 1000, 3), 128, np.uint8)
    big = cv2.resize(hopper, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    small = cv2.resize(hopper[:, ::-1], None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    paste(canvas, big, 60, 40)
    paste(canvas, small, 700, 450)
    x, y, w, h = HOPPER_FACE
    expected = [(60 + x * 0.5, 40 + y * 0.5, w * 0.5, h * 0.5),
                (700 + (hopper.shape[1] - x - w) * 0.3, 450 + y * 0.3, w * 0.3, h * 0.3)]
    for cascade in ("alt2", "default"):
        boxes = detect_faces(cv2.cvtColor(canvas, cv2.COLOR_BGR2GRAY), cascade=cascade)
        assert len(boxes) == 2, (cascade, boxes)
        assert iou(boxes[0], expected[0]) > 0.6 and iou(boxes[1], expected[1]) > 0.6, boxes


def test_detects_synthetic_faces_at_several_positions_and_scales(synth_faces):
    canvas, truth = synth_scene(synth_faces)
    boxes = detect_faces(canvas)
    assert len(boxes) == 3
    assert boxes[0][2] >= boxes[1][2] >= boxes[2][2]                  # largest first
    for t in truth:
        assert max(iou(b, t) for b in boxes) > 0.6


def test_no_face_in_blank_or_smooth_images():
    assert detect_faces(np.zeros((300, 400), np.uint8)) == []
    assert detect_faces(np.tile(np.linspace(0, 255, 400).astype(np.uint8), (300, 1))) == []
    assert detect_faces(np.zeros((10, 10), np.uint8)) == []           # smaller than min_size


def test_large_images_are_searched_downscaled(synth_faces):
    canvas, truth = synth_scene(synth_faces)
    big = cv2.resize(canvas, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)   # 2560 px wide
    boxes = detect_faces(big, max_side=640)
    for t in truth:
        assert max(iou(b, tuple(4 * v for v in t)) for b in boxes) > 0.6


def test_crop_face_is_a_48x48_square_crop_like_the_training_faces(synth_faces):
    canvas, truth = synth_scene(synth_faces)
    crop = crop_face(canvas, truth[0], margin=0.0)     # the exact pasted region, area-resized
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    assert np.abs(crop.astype(int) - synth_faces[0]).mean() < 2.0
    # margin grows the square about the box centre; at a border it shrinks, staying square
    assert square_box((100, 100, 50, 40), (400, 400), margin=0.2) == (90, 85, 70, 70)
    assert square_box((0, 10, 50, 50), (400, 400), margin=0.2) == (0, 10, 50, 50)
    assert crop_face(canvas, (600, 350, 80, 80)).shape == (48, 48)   # clamped at the corner
    color = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
    np.testing.assert_array_equal(crop_face(color, truth[1]), crop_face(canvas, truth[1]))


def test_a_48x48_input_is_already_a_face_crop(synth_faces):
    boxes, crops = find_faces(synth_faces[3])
    assert boxes == [(0, 0, 48, 48)]
    np.testing.assert_array_equal(crops[0], synth_faces[3])


# ------------------------------------------------------------------------- prediction

def test_predict_matches_the_model_on_training_preprocessing(predictor, tiny_run, synth_faces):
    """48x48 crops skip detection and get exactly the evaluation preprocessing of training."""
    import jax

    from ferjax.data.pipeline import preprocess_numpy
    from ferjax.train.checkpoint import load_run
    from ferjax.models import build_model
    cfg, arrays, _ = load_run(tiny_run)
    x = preprocess_numpy(synth_faces, cfg.data.features, cfg.data.image_size)
    variables = {k: arrays[k] for k in ("params", "batch_stats") if k in arrays}   # BN, not folded
    logits = build_model(cfg.model.name, cfg.model.conv).apply(variables, x)[0]
    expected = np.asarray(jax.nn.softmax(logits))
    got = predictor.predict_many(list(synth_faces))
    for k, faces in enumerate(got):
        assert len(faces) == 1 and faces[0].box == (0, 0, 48, 48)
        probs = faces[0].probabilities
        assert list(probs) == sorted(probs, key=probs.get, reverse=True)    # top class first
        assert set(probs) == set(CLASS_NAMES) and abs(sum(probs.values()) - 1) < 1e-5
        np.testing.assert_allclose([probs[c] for c in CLASS_NAMES], expected[k], atol=1e-5)
        assert faces[0].top == CLASS_NAMES[int(np.argmax(expected[k]))]


def test_paths_color_and_gray_arrays_give_the_same_faces(predictor, synth_faces, tmp_path):
    canvas, truth = synth_scene(synth_faces)
    cv2.imwrite(str(tmp_path / "scene.png"), canvas)
    from_path = predictor.predict(tmp_path / "scene.png")
    from_str = predictor.predict(str(tmp_path / "scene.png"))
    from_gray = predictor.predict(canvas)
    from_color = predictor.predict(cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR))
    assert len(from_path) == 3
    assert from_path == from_str == from_gray
    assert_same_faces(from_path, from_color)
    assert predictor.predict(np.zeros((240, 320, 3), np.uint8)) == []
    with pytest.raises(Exception):
        from_path[0].box = (0, 0, 1, 1)                       # frozen


def test_predict_many_runs_all_faces_through_one_jitted_call(predictor, synth_faces):
    scene, _ = synth_scene(synth_faces)
    images = [scene, np.zeros((200, 200), np.uint8), synth_faces[0], scene, synth_faces[1]]
    calls, compiled = predictor.forward_calls, predictor.compilations
    many = predictor.predict_many(images)
    assert [len(f) for f in many] == [3, 0, 1, 3, 1]
    assert predictor.forward_calls == calls + 1
    for a, b in zip(many, [predictor.predict(im) for im in images]):   # batching changes nothing
        assert_same_faces(a, b)
    # another face count in the same bucket (<= 32) does not compile again
    predictor.predict_many(images[:3])
    assert predictor.compilations == max(compiled, 1)


def test_buckets_bound_compilations(predictor, monkeypatch):
    assert [bucket_size(n) for n in (1, 32, 33, 64, 65, 200, 512, 4000)] == \
        [32, 32, 64, 64, 128, 256, 512, 512]
    boxes = [(10 * i, 0, 30, 30) for i in range(20)]
    monkeypatch.setattr("ferjax.predict.predictor.find_faces", lambda image, **kw: (
        boxes, np.repeat(image[None, :48, :48], len(boxes), axis=0)))
    image = np.random.default_rng(0).integers(0, 255, (60, 60), dtype=np.uint8)
    calls = predictor.forward_calls
    out = predictor.predict_many([image] * 3)                 # 60 faces -> bucket 64, one call
    assert [len(f) for f in out] == [20, 20, 20] and predictor.forward_calls == calls + 1
    shapes = predictor.compilations
    predictor.predict_many([image] * 2)                       # 40 faces: the same bucket
    assert predictor.compilations == shapes and predictor.forward_calls == calls + 2
    assert_same_faces(out[0], out[2])                         # identical crops, same answer


def test_unreadable_inputs_raise_naming_the_file(predictor, tmp_path):
    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="notes.jpg"):
        predictor.predict(fake)
    with pytest.raises(FileNotFoundError, match="missing.png"):
        predictor.predict(tmp_path / "missing.png")


def test_no_shipped_model_gives_a_clear_error(monkeypatch, tmp_path, tiny_run):
    import ferjax.assets as assets
    monkeypatch.setattr(assets, "MODEL_DIR", tmp_path / "model")
    with pytest.raises(FileNotFoundError, match="pass --checkpoint"):
        Predictor.from_checkpoint()
    assert cli.main(["predict", str(tmp_path)]) == 2
    monkeypatch.setattr(assets, "MODEL_DIR", tiny_run)      # a shipped model is found
    assert assets.shipped_checkpoint() == tiny_run


def test_import_ferjax_stays_light_and_exports_predictor_lazily():
    code = ("import sys, ferjax; heavy = [m for m in ('jax', 'tensorflow', 'cv2', 'flax') "
            "if m in sys.modules]; assert not heavy, heavy; "
            "from ferjax.predict import Predictor; assert ferjax.Predictor is Predictor")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ------------------------------------------------------------------------- the command

SUMMARY = re.compile(r"(\d+) images(?: \+ (\d+) video frames)?, (\d+) faces, [\d.]+ images/s")


@pytest.fixture
def inputs(tmp_path, synth_faces):
    """A folder with a 3-face scene, a blank photo, a 48x48 crop in a subfolder, a text
    file named .jpg and a notes file; plus an empty folder."""
    root = tmp_path / "photos"
    (root / "crops").mkdir(parents=True)
    scene, _ = synth_scene(synth_faces)
    cv2.imwrite(str(root / "scene.jpg"), cv2.cvtColor(scene, cv2.COLOR_GRAY2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    cv2.imwrite(str(root / "blank.png"), np.full((240, 320, 3), 90, np.uint8))
    cv2.imwrite(str(root / "crops" / "face.png"), synth_faces[2])
    (root / "broken.jpg").write_text("this is text, not a JPEG")
    (root / "notes.txt").write_text("ignored: not an image extension")
    (tmp_path / "empty").mkdir()
    return tmp_path


def test_json_lines_with_errors_reported_and_other_inputs_processed(inputs, tiny_run, capsys):
    root = inputs / "photos"
    rc = cli.main(["predict", str(root), str(inputs / "missing.jpg"), str(inputs / "empty"),
                   str(root / "crops" / "face.png"), "--checkpoint", str(tiny_run), "--json"])
    out, err = capsys.readouterr()
    assert rc == 1                                            # some inputs failed
    records = [json.loads(line) for line in out.splitlines()]
    assert [Path(r["input"]).relative_to(inputs).as_posix() for r in records] == [
        "photos/blank.png", "photos/broken.jpg", "photos/crops/face.png", "photos/scene.jpg",
        "missing.jpg", "empty", "photos/crops/face.png"]
    by = {i: r for i, r in enumerate(records)}
    assert by[0]["faces"] == [] and "error" not in by[0]
    assert "broken.jpg" in by[1]["error"] and by[1]["faces"] == []
    assert by[2]["faces"][0]["box"] == [0, 0, 48, 48] == by[6]["faces"][0]["box"]
    np.testing.assert_allclose([by[2]["faces"][0]["probabilities"][c] for c in CLASS_NAMES],
                               [by[6]["faces"][0]["probabilities"][c] for c in CLASS_NAMES], atol=1e-5)
    assert len(by[3]["faces"]) == 3 and "error" not in by[3]
    assert "missing.jpg" in by[4]["error"] and "empty" in by[5]["error"]
    for face in by[3]["faces"]:
        assert len(face["box"]) == 4 and list(face["probabilities"]) != []
        probs = list(face["probabilities"].values())
        assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 1e-4
    m = SUMMARY.search(err)
    assert m and m.group(1) == "4" and m.group(3) == "5", err


def test_readable_output_and_annotation(inputs, predictor, capsys):
    root, ann = inputs / "photos", inputs / "annotated"
    rc = run_predict([str(root)], as_json=False, annotate_dir=str(ann), predictor=predictor)
    out, _ = capsys.readouterr()
    assert rc == 1                                            # broken.jpg
    assert "blank.png: no face found" in out and "scene.jpg: 3 faces" in out
    assert "broken.jpg: error: cannot read" in out
    written = sorted(p.relative_to(ann).as_posix() for p in ann.rglob("*") if p.is_file())
    assert written == ["photos/blank.png", "photos/crops/face.png", "photos/scene.jpg"]
    original = cv2.imread(str(root / "scene.jpg"))
    drawn = cv2.imread(str(ann / "photos" / "scene.jpg"))
    assert drawn.shape == original.shape and np.abs(drawn.astype(int) - original).mean() > 1
    # annotating into the input folder does not feed the copies back in on a second run
    for _ in range(2):
        run_predict([str(root)], as_json=True, annotate_dir=str(root / "annotated"),
                    predictor=predictor)
        assert len(capsys.readouterr()[0].splitlines()) == 4
    assert len(list((root / "annotated").rglob("*.*"))) == 3


def test_video_frames_are_sampled_and_reported_with_their_index(predictor, synth_faces, tmp_path,
                                                                 capsys):
    scene, _ = synth_scene(synth_faces)
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, scene.shape[::-1])
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for i in range(25):                                       # 2.5 s at 10 fps
        writer.write(cv2.cvtColor(scene if i < 15 else np.zeros_like(scene), cv2.COLOR_GRAY2BGR))
    writer.release()
    (tmp_path / "bad.mp4").write_text("not a video")
    rc = run_predict([str(path), str(tmp_path / "bad.mp4")], as_json=True, predictor=predictor)
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [r.get("frame") for r in records] == [0, 10, 20, None]    # one frame per second
    assert [len(r["faces"]) for r in records[:3]] == [3, 3, 0]
    assert records[1]["time"] == 1.0 and "bad.mp4" in records[3]["error"]
    assert rc == 1 and SUMMARY.search(err).group(2) == "3"
    frames = list(predictor.predict_video(path, every_frames=12))
    assert [(i, len(f)) for i, _, f in frames] == [(0, 3), (12, 3), (24, 0)]
