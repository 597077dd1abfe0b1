"""The dense and dropout layers the models use in place of flax's."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.models.dense import Dense
from ferjax.models.dropout import Dropout, keep_mask


def test_dense_computes_and_differentiates_as_flax_dense():
    x = jax.random.normal(jax.random.key(0), (5, 12))
    ours, theirs = Dense(7), nn.Dense(7)
    params = theirs.init(jax.random.key(1), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(1), x)) == jax.tree.map(jnp.shape, params)

    def loss(module, p, x):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    np.testing.assert_allclose(ours.apply(params, x), theirs.apply(params, x), rtol=1e-6, atol=1e-6)
    for argnum in (1, 2):
        g_ours = jax.grad(loss, argnum)(ours, params, x)
        g_theirs = jax.grad(loss, argnum)(theirs, params, x)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), g_ours, g_theirs)


def test_dense_refuses_inputs_that_are_not_flat():
    with pytest.raises(ValueError, match="batch, features"):
        Dense(3).init(jax.random.key(0), jnp.zeros((2, 4, 4)))


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_dropout_keeps_each_element_with_probability_one_minus_rate_and_rescales(rate):
    x = jnp.ones((64, 32, 32, 8))
    y = np.asarray(Dropout(rate).apply({}, x, rngs={"dropout": jax.random.key(3)}))
    kept = y != 0
    n = kept.size
    assert abs(kept.mean() - (1 - rate)) < 4 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(y[kept], 1 / (1 - rate), rtol=1e-6)
    flat = kept.reshape(-1).astype(np.float64)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01      # neighbours independent


def test_dropout_masks_differ_between_keys_and_repeat_for_one_key():
    a = np.asarray(keep_mask(jax.random.key(0), 0.5, (4096,)))
    b = np.asarray(keep_mask(jax.random.key(1), 0.5, (4096,)))
    assert np.array_equal(a, np.asarray(keep_mask(jax.random.key(0), 0.5, (4096,))))
    assert 0.4 < (a == b).mean() < 0.6


def test_dropout_is_the_identity_when_deterministic_or_rate_zero():
    x = jax.random.normal(jax.random.key(0), (3, 5))
    np.testing.assert_array_equal(Dropout(0.5, deterministic=True).apply({}, x), x)
    np.testing.assert_array_equal(Dropout(0.0).apply({}, x), x)
