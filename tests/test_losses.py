import jax
import jax.numpy as jnp
import numpy as np

from ferjax.losses import center_loss, center_loss_weight, softmax_cross_entropy, total_loss, update_centers


def test_center_loss_value_and_gradient_by_hand():
    feats = jnp.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    labels = jnp.array([0, 1, 0])
    centers = jnp.array([[1.0, 0.0], [1.0, 1.0]])
    # squared distances: (0^2+2^2)=4, (2^2+1^2)=5, (1^2+0^2)=1 -> 0.5 * mean = 0.5*10/3
    assert np.isclose(center_loss(feats, labels, centers, "sum"), 0.5 * 10 / 3)
    g = jax.grad(center_loss)(feats, labels, centers, "sum")
    np.testing.assert_allclose(g, (feats - centers[labels]) / 3, rtol=1e-6)
    # "mean" (the default): the same per feature unit, 2 units here
    assert np.isclose(center_loss(feats, labels, centers), 0.5 * 10 / 3 / 2)
    assert np.all(jax.grad(center_loss, argnums=2)(feats, labels, centers) == 0)  # centers are not trained


def test_center_update_rule_of_wen_et_al():
    feats = jnp.array([[1.0, 2.0], [3.0, 0.0], [0.0, 0.0]])
    labels = jnp.array([0, 1, 0])
    centers = jnp.array([[1.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    new = update_centers(centers, feats, labels, 0.5)
    # class 0: n=2, sum(c - f) = (0,-2)+(1,0) = (1,-2); delta = (1,-2)/3
    np.testing.assert_allclose(new[0], np.array([1.0, 0.0]) - 0.5 * np.array([1, -2]) / 3, rtol=1e-6)
    # class 1: n=1, (c - f) = (-2, 1); delta = (-2,1)/2
    np.testing.assert_allclose(new[1], np.array([1.0, 1.0]) - 0.5 * np.array([-2, 1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(new[2], centers[2])   # no samples: unchanged


def test_cross_entropy_with_soft_targets():
    logits = jnp.array([[2.0, 0.0], [0.0, 0.0]])
    targets = jnp.array([[0.5, 0.5], [1.0, 0.0]])
    ls = jax.nn.log_softmax(logits)
    expected = -(0.5 * ls[0, 0] + 0.5 * ls[0, 1] + ls[1, 0]) / 2
    assert np.isclose(softmax_cross_entropy(logits, targets), expected)


def test_lambda_zero_is_softmax_exactly():
    k = jax.random.PRNGKey(0)
    logits, feats = jax.random.normal(k, (4, 8)), jax.random.normal(k, (4, 3))
    targets = jax.nn.one_hot(jnp.array([0, 1, 2, 3]), 8)
    loss, (ce, cl) = total_loss(logits, feats, targets, jnp.array([0, 1, 2, 3]), jnp.ones((8, 3)), 0.0)
    assert loss == ce and cl > 0


def test_center_loss_weight_ramps_to_lambda():
    assert [float(center_loss_weight(jnp.float32(2.0), s, ramp_steps=10)) for s in (0, 5, 10, 30)] == [0.0, 1.0, 2.0, 2.0]
    assert float(center_loss_weight(jnp.float32(2.0), 0)) == 2.0
