"""O/S/L feature channels: numpy reference vs OpenCV, TF and JAX front-ends vs each other."""
from __future__ import annotations

import glob

import cv2
import numpy as np
import pytest

from ferjax import features



def smooth_images(n: int = 4, size: int = 48, seed: int = 0) -> np.ndarray:
    """Blurred noise: smooth, face-scale structure with a realistic dynamic range."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, size, size)).astype(np.float32)
    out = np.stack([cv2.GaussianBlur(x, (0, 0), 2.0) for x in noise])
    return (out - out.mean()) / out.std()


def real_images(ferplus, n: int = 4) -> np.ndarray:
    files = sorted(glob.glob(f"{ferplus / 'FER2013Train'}/*.png"))[:n]
    if not files:
        pytest.skip(f"no FERPlus images in {ferplus}")
    return np.stack([cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]).astype(np.float32)


def standardize(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + features.STD_EPS)


def check_raw_against_cv2(images: np.ndarray) -> None:
    for image in images:
        scale = np.abs(image).max()
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        np.testing.assert_allclose(features.sobel_magnitude_np(image), np.sqrt(gx**2 + gy**2),
                                   atol=1e-5 * scale)
        np.testing.assert_allclose(features.laplacian_np(image),
                                   cv2.Laplacian(image, cv2.CV_32F, ksize=1), atol=1e-5 * scale)


def test_raw_reference_matches_cv2_on_smooth_images():
    check_raw_against_cv2(smooth_images())


@pytest.mark.realdata
def test_raw_reference_matches_cv2_on_real_faces(real_ferplus):
    check_raw_against_cv2(real_images(real_ferplus))


@pytest.mark.realdata
def test_tf_channels_are_standardised_cv2_responses(real_ferplus):
    images = real_images(real_ferplus)
    images = (images - images.mean()) / images.std()
    out = features.add_features_tf(images, "O-S-L").numpy()
    for i, image in enumerate(images):
        gx = cv2.Sobel(image, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(image, cv2.CV_32F, 0, 1, ksize=3)
        np.testing.assert_array_equal(out[i, ..., 0], image)
        np.testing.assert_allclose(out[i, ..., 1], standardize(np.sqrt(gx**2 + gy**2)), atol=1e-4)
        np.testing.assert_allclose(out[i, ..., 2],
                                   standardize(cv2.Laplacian(image, cv2.CV_32F, ksize=1)),
                                   atol=1e-4)


@pytest.mark.parametrize("feature_set", list(features.FEATURE_SETS))
def test_tf_and_jax_front_ends_agree(feature_set):
    images = smooth_images(3, 64)
    tf_out = features.add_features_tf(images, feature_set).numpy()
    jax_out = np.asarray(features.add_features_jax(images, feature_set))
    jax_4d = np.asarray(features.add_features_jax(images[..., None], feature_set))
    c = features.num_channels(feature_set)
    assert tf_out.shape == jax_out.shape == (3, 64, 64, c)
    assert tf_out.dtype == jax_out.dtype == np.float32
    np.testing.assert_allclose(tf_out, jax_out, atol=1e-5)
    np.testing.assert_array_equal(jax_out, jax_4d)


def test_channel_order_and_statistics():
    images = smooth_images(2, 64)
    out = np.asarray(features.add_features_jax(images, "O-S-L"))
    np.testing.assert_array_equal(out[..., 0], images)
    np.testing.assert_allclose(out[..., 1], np.stack([standardize(features.sobel_magnitude_np(x))
                                                      for x in images]), atol=1e-4)
    np.testing.assert_allclose(out[..., 2], np.stack([standardize(features.laplacian_np(x))
                                                      for x in images]), atol=1e-4)
    derived = out[..., 1:]
    np.testing.assert_allclose(derived.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(derived.std(axis=(1, 2)), 1.0, atol=1e-4)


def test_jax_front_end_under_jit():
    import jax
    images = smooth_images(2, 64)
    jitted = jax.jit(features.add_features_jax, static_argnums=1)
    np.testing.assert_allclose(np.asarray(jitted(images, "O-S-L")),
                               np.asarray(features.add_features_jax(images, "O-S-L")), atol=1e-6)


def test_constant_image_gives_zero_derived_channels():
    out = features.add_features_tf(np.zeros((1, 8, 8), np.float32), "O-S-L").numpy()
    np.testing.assert_array_equal(out, 0.0)


def test_num_channels_and_unknown_feature_set():
    assert [features.num_channels(f) for f in ("O", "O-S", "O-L", "O-S-L")] == [1, 2, 2, 3]
    with pytest.raises(ValueError, match="O-S-L"):
        features.num_channels("O-X")
    with pytest.raises(ValueError, match="choose one of"):
        features.add_features_tf(np.zeros((1, 8, 8), np.float32), "S")
    with pytest.raises(ValueError, match="choose one of"):
        features.add_features_jax(np.zeros((1, 8, 8), np.float32), "L")
