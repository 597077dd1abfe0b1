"""tf.data pipeline: FERPlus reference warp/preprocessing, determinism, batching."""
from __future__ import annotations

import glob

import cv2
import numpy as np
import pytest
import tensorflow as tf

from ferjax import features
from ferjax.classes import NUM_CLASSES
from ferjax.data import pipeline
from ferjax.data.records import LabeledSplit

ndimage = pytest.importorskip("scipy.ndimage")

from conftest import REAL_FERPLUS


def face_like_images(n: int, seed: int = 0) -> np.ndarray:
    """Real FERPlus faces when available, else blurred noise with a lighting gradient."""
    files = sorted(glob.glob(f"{REAL_FERPLUS / 'FER2013Train'}/*.png"))[:n]
    if len(files) == n:
        return np.stack([cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files])
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, 48, 48)).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(x, (0, 0), 2.0) for x in noise])
    ramp = np.linspace(-1, 1, 48, dtype=np.float32)[None, :, None]
    out = 128 + 200 * blurred + 30 * ramp
    return np.clip(out, 0, 255).round().astype(np.uint8)


def make_split(n: int, seed: int = 0) -> LabeledSplit:
    labels = (np.arange(n) % NUM_CLASSES).astype(np.int32)
    return LabeledSplit(images=face_like_images(n, seed),
                        targets=np.eye(NUM_CLASSES, dtype=np.float32)[labels], labels=labels)


# ---------------------------------------------------------------- literal FERPlus reference

def crop_img_reference(img, shift_y, shift_x, scale_y, scale_x, angle, skew_y, skew_x,
                       out=64):
    """microsoft/FERPlus img_util.crop_img for the full 48x48 roi (Rect centre (24, 24))."""
    ctr_in = np.array((24.0, 24.0))
    ctr_out = np.array((out / 2.0 + shift_y, out / 2.0 + shift_x))
    s_y, s_x = scale_y * 47.0 / (out - 1), scale_x * 47.0 / (out - 1)
    ang = angle * np.pi / 180.0
    t = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    t = t.dot(np.array([[1.0, skew_y], [0.0, 1.0]]))
    t = t.dot(np.array([[1.0, 0.0], [skew_x, 1.0]]))
    t = t.dot(np.diag([s_y, s_x]))
    offset = ctr_in - ctr_out.dot(t)
    return ndimage.affine_transform(img, t.T, offset=offset, output_shape=(out, out), order=1,
                                    mode="reflect", prefilter=False)


def preproc_img_reference(img):
    """microsoft/FERPlus img_util.preproc_img (float64)."""
    h, w = img.shape
    x, y = np.meshgrid(np.arange(w), np.arange(h))
    a = np.array([x.ravel() * 0 + 1, x.ravel(), y.ravel()]).T
    flat = img.flatten()
    cdf = np.bincount(flat, minlength=256).cumsum()
    eq = (cdf * (2.0 / cdf[-1]) - 1.0)[flat]
    diff = eq - a @ (np.linalg.pinv(a) @ eq)
    std = np.sqrt(diff @ diff / diff.size)
    return (diff / std if std > 1e-6 else diff).reshape(img.shape)


FIXED = [  # (shift_y, shift_x, scale_y, scale_x, angle, skew_y, skew_x, flip)
    (3.1, -4.2, 1 / 1.04, 1.03, 17.0, 0.04, -0.03, False),
    (-5.0, 2.5, 1.05, 1 / 1.02, -12.0, -0.05, 0.02, True),
    (12.0, -15.0, 1 / 1.05, 1 / 1.05, 45.0, 0.05, -0.05, False),   # far into the border
]


def tf_warp(images: np.ndarray, params: tuple) -> np.ndarray:
    names = ("shift_y", "shift_x", "scale_y", "scale_x", "angle", "skew_y", "skew_x", "flip")
    batch = {k: tf.fill([len(images)], float(v)) for k, v in zip(names, params)}
    transforms = pipeline.projective_transforms(batch, 48, 64)
    return pipeline.warp_images(tf.constant(images), transforms, 64).numpy()


@pytest.mark.parametrize("params", FIXED)
def test_warp_matches_scipy_affine_transform(params):
    images = face_like_images(3)
    out = tf_warp(images, params)
    rounded = pipeline.round_to_uint8({"image": tf.constant(out)})["image"].numpy()
    for image, got, got_u8 in zip(images, out, rounded):
        ref = crop_img_reference(image.astype(np.float64), *params[:-1])
        ref_u8 = crop_img_reference(image, *params[:-1])     # uint8 in, uint8 out, like PIL
        if params[-1]:
            ref, ref_u8 = np.fliplr(ref), np.fliplr(ref_u8)
        # Every pixel, the reflected border included: TF REFLECT == scipy "reflect".
        np.testing.assert_allclose(got, ref, atol=5e-3)
        assert np.mean(got_u8 != ref_u8) < 1e-3   # only exact .5 ties could differ
        assert np.abs(got_u8.astype(int) - ref_u8).max() <= 1


def test_eval_path_matches_reference_preprocessing():
    images = face_like_images(4)
    out = pipeline.preprocess_numpy(images, "O")
    assert out.shape == (4, 64, 64, 1) and out.dtype == np.float32
    for image, got in zip(images, out):
        ref = preproc_img_reference(crop_img_reference(image, 0, 0, 1, 1, 0, 0, 0))
        np.testing.assert_allclose(got[..., 0], ref, atol=2e-4)


def test_eval_warp_is_a_plain_resize():
    constant = np.full((1, 48, 48), 137, np.uint8)
    gradient = np.repeat(np.arange(0, 240, 5, dtype=np.uint8)[None, :, None], 48, axis=2)
    warp = pipeline.warp(64, augment=False)
    flat = warp({"image": tf.constant(constant)})["image"].numpy()
    np.testing.assert_allclose(flat, 137.0, atol=1e-4)
    ramp = warp({"image": tf.constant(gradient)})["image"].numpy()[0]
    assert ramp.shape == (64, 64)
    np.testing.assert_allclose(ramp, ramp[:, :1].repeat(64, axis=1), atol=1e-4)  # rows constant
    assert np.all(np.diff(ramp[:, 0]) >= 0) and ramp[-1, 0] > ramp[0, 0] + 200


def test_random_warp_params_follow_reference_ranges():
    p = {k: v.numpy() for k, v in
         pipeline.random_warp_params(tf.constant([1, 2], tf.int64), 4000, 64).items()}
    assert np.abs(p["shift_y"]).max() <= 64 * 0.08 and np.abs(p["shift_x"]).max() <= 64 * 0.08
    assert np.abs(p["angle"]).max() <= 20 and np.abs(p["angle"]).max() > 19
    assert np.abs(p["skew_y"]).max() <= 0.05 and np.abs(p["skew_x"]).max() <= 0.05
    for scale in (p["scale_y"], p["scale_x"]):
        assert scale.min() >= 1 / 1.05 - 1e-6 and scale.max() <= 1.05 + 1e-6
        assert 0.45 < np.mean(scale < 1) < 0.55
    assert 0.45 < p["flip"].mean() < 0.55
    assert abs(np.corrcoef(p["scale_y"], p["scale_x"])[0, 1]) < 0.1


# ---------------------------------------------------------------- datasets

def collect(batches) -> list[dict[str, np.ndarray]]:
    return list(batches)


def test_train_batches_shapes_and_keys():
    split = make_split(40)
    batches = collect(pipeline.train_batches(split, feature_set="O-S-L", batch_size=16,
                                             seed=0, epoch=0))
    assert len(batches) == pipeline.steps_per_epoch(40, 16) == 2
    for b in batches:
        assert set(b) == {"image", "target", "label"}
        assert b["image"].shape == (16, 64, 64, 3) and b["image"].dtype == np.float32
        assert b["target"].shape == (16, NUM_CLASSES) and b["target"].dtype == np.float32
        assert b["label"].shape == (16,) and b["label"].dtype == np.int32
        np.testing.assert_array_equal(b["target"].argmax(-1), b["label"])
        assert np.isfinite(b["image"]).all()


def test_train_batches_are_reproducible_per_epoch():
    split = make_split(48)

    def epoch(seed, e):
        return collect(pipeline.train_batches(split, feature_set="O-S", batch_size=16,
                                              seed=seed, epoch=e))

    first, again = epoch(3, 1), epoch(3, 1)
    for a, b in zip(first, again):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    for other in (epoch(3, 2), epoch(4, 1)):
        assert not np.array_equal(first[0]["image"], other[0]["image"])
        assert not np.array_equal(np.concatenate([b["label"] for b in first]),
                                  np.concatenate([b["label"] for b in other]))


def test_unaugmented_train_batches_follow_the_shuffled_order():
    split = make_split(32)
    batches = collect(pipeline.train_batches(split, feature_set="O", batch_size=16, seed=5,
                                             epoch=2, augment=False))
    order = np.random.default_rng((5, 2)).permutation(32)
    expected = pipeline.preprocess_numpy(split.images[order], "O")
    np.testing.assert_allclose(np.concatenate([b["image"] for b in batches]), expected,
                               atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches]),
                                  split.labels[order])


def test_normalisation_statistics():
    split = make_split(32)
    batch = next(pipeline.train_batches(split, feature_set="O-S-L", batch_size=32, seed=0,
                                        epoch=0))
    image = batch["image"]
    np.testing.assert_allclose(image.mean(axis=(1, 2)), 0.0, atol=1e-3)
    np.testing.assert_allclose(image.std(axis=(1, 2)), 1.0, atol=1e-3)


def test_eval_batches_are_padded_and_deterministic():
    split = make_split(37)

    def run():
        return collect(pipeline.eval_batches(split, feature_set="O-L", batch_size=16))

    batches, again = run(), run()
    assert len(batches) == 3
    for a, b in zip(batches, again):
        assert set(a) == {"image", "target", "label", "mask"}
        assert a["image"].shape == (16, 64, 64, 2) and a["mask"].dtype == np.float32
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    mask = np.concatenate([b["mask"] for b in batches])
    np.testing.assert_array_equal(mask, np.r_[np.ones(37), np.zeros(11)])
    images = np.concatenate([b["image"] for b in batches])[:37]
    np.testing.assert_allclose(images, pipeline.preprocess_numpy(split.images, "O-L"),
                               atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([b["label"] for b in batches])[:37],
                                  split.labels)


def test_batch_size_larger_than_split_is_an_error():
    split = make_split(10)
    with pytest.raises(ValueError, match="larger than the split"):
        pipeline.train_batches(split, feature_set="O", batch_size=11, seed=0, epoch=0)
    with pytest.raises(ValueError, match="larger than the split"):
        pipeline.steps_per_epoch(10, 11)
    assert pipeline.steps_per_epoch(10, 4) == 2


def test_unknown_feature_set_is_an_error():
    with pytest.raises(ValueError, match="choose one of"):
        pipeline.eval_batches(make_split(4), feature_set="SL", batch_size=2)


def test_preprocess_numpy_shapes():
    out = pipeline.preprocess_numpy(face_like_images(3), "O-S-L")
    assert out.shape == (3, 64, 64, features.num_channels("O-S-L"))
    assert pipeline.preprocess_numpy(np.zeros((0, 48, 48), np.uint8), "O").shape == (0, 64, 64, 1)
