import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ferjax.models import build_model, count_params, inference_model, init_params, init_variables
from ferjax.models.conv import conv3x3_matmul, max_pool2_reshape


@pytest.mark.parametrize("channels,expected", [(1, 8_757_704), (2, 8_757_704 + 576), (3, 8_757_704 + 1152)])
def test_vgg13_parameter_count_matches_ferplus_reference(channels, expected):
    params = jax.eval_shape(lambda: init_params(build_model("vgg13"), jax.random.PRNGKey(0), channels))
    assert count_params(params) == expected


@pytest.mark.parametrize("layers,expected", [
    ("pooled", 349_520),     # 348,512 in the convolutions and dense layers, 1,008 in batch norm
    ("flat", 361_664)])      # 361,072 and 592: the table of the runs before 2026-12-07
def test_light_model_keeps_the_studys_budget_of_036m_parameters(layers, expected):
    params = jax.eval_shape(lambda: init_params(build_model("light", light_layers=layers),
                                                jax.random.PRNGKey(0), 1))
    n = count_params(params)
    assert n == expected
    assert abs(n - 360_000) / 360_000 < 0.05
    assert 22 < 8_757_704 / n < 26


def test_light_layer_tables_are_the_configs_names():
    from ferjax.config import LIGHT_LAYER_NAMES, LIGHT_LAYERS, ModelConfig
    assert set(LIGHT_LAYER_NAMES) == set(LIGHT_LAYERS) and ModelConfig().light_layers in LIGHT_LAYERS
    with pytest.raises(ValueError, match="layer table 'wide'"):
        ModelConfig(light_layers="wide")
    with pytest.raises(ValueError, match="layer table 'wide'"):
        build_model("light", light_layers="wide")


def test_matmul_conv_equals_lax_conv():
    kx, kw = jax.random.split(jax.random.PRNGKey(1))
    x = jax.random.normal(kx, (2, 10, 12, 5))
    w = jax.random.normal(kw, (3, 3, 5, 7))
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(conv3x3_matmul(x, w), ref, rtol=1e-5, atol=1e-5)


def test_reshape_max_pool_has_the_gradient_of_flax_max_pool_through_a_relu():
    """Its gradient goes to every input equal to its window's max: after a ReLU, windows of
    zeros tie, and the ReLU drops their gradient, as autodiff of nn.max_pool does."""
    import flax.linen as nn
    x = jax.random.normal(jax.random.PRNGKey(3), (2, 8, 6, 5)) - 0.5     # many all-negative windows
    r = jax.random.normal(jax.random.PRNGKey(4), (2, 4, 3, 5))
    ref = lambda x: jnp.sum(nn.max_pool(jax.nn.relu(x), (2, 2), strides=(2, 2)) * r)  # noqa: E731
    ours = lambda x: jnp.sum(max_pool2_reshape(jax.nn.relu(x)) * r)  # noqa: E731
    np.testing.assert_allclose(ours(x), ref(x), rtol=1e-6)
    g, g_ref = jax.grad(ours)(x), jax.grad(ref)(x)
    assert int(jnp.sum(g != 0)) == int(jnp.sum(g_ref != 0)) > 0
    np.testing.assert_allclose(g, g_ref, rtol=1e-6)


@pytest.mark.parametrize("name", ["light", "vgg13"])
def test_matmul_and_lax_models_share_params_and_agree(name):
    fast, plain = build_model(name, "matmul"), build_model(name, "lax")
    size = 64 if name == "light" else 32          # VGG13 at 32x32: same layers, a quicker test
    variables = init_variables(fast, jax.random.PRNGKey(0), 3, size)
    params = variables["params"]
    assert jax.tree.structure(params) == jax.tree.structure(init_params(plain, jax.random.PRNGKey(0), 3, size))
    x = jax.random.normal(jax.random.PRNGKey(2), (2, size, size, 3))
    labels = jnp.array([1, 5])

    def loss(model, p):
        logits, feats = model.apply({**variables, "params": p}, x)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels]) + 1e-3 * jnp.sum(feats ** 2)

    (lf, gf), (lp, gp) = (jax.value_and_grad(lambda p, m=m: loss(m, p))(params) for m in (fast, plain))
    np.testing.assert_allclose(lf, lp, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(gf), jax.tree.leaves(gp)):
        scale = max(float(jnp.max(jnp.abs(b))), 1e-8)
        assert float(jnp.max(jnp.abs(a - b))) / scale < 1e-4


def test_models_return_logits_and_penultimate_features():
    for name, layers, dim in (("light", "pooled", 128), ("light", "flat", 96), ("vgg13", "pooled", 1024)):
        model = build_model(name, light_layers=layers)
        variables = init_variables(model, jax.random.PRNGKey(0), 1)
        logits, feats = model.apply(variables, jnp.zeros((3, 64, 64, 1)))
        assert logits.shape == (3, 8) and feats.shape == (3, dim)


@pytest.mark.parametrize("name,size,folded_count", [("light", 64, 348_512 + 864),
                                                     ("vgg13", 32, 8_757_704 + 576 - 3 * 1024 * 1024)])
def test_folded_batch_norm_computes_what_the_bn_model_computes_at_inference(name, size, folded_count):
    model = build_model(name, batch_norm=True)
    variables = init_variables(model, jax.random.PRNGKey(0), 2, size)
    x = jax.random.normal(jax.random.PRNGKey(1), (16, size, size, 2))
    # non-trivial statistics and affine parameters: a few training-mode passes, then perturb
    for _ in range(3):
        _, upd = model.apply(variables, x * 3 + 1, train=True, mutable=["batch_stats"],
                             rngs={"dropout": jax.random.PRNGKey(2)})
        variables = {**variables, **upd}
    params = jax.tree_util.tree_map_with_path(
        lambda path, v: v + 0.1 * jnp.cos(jnp.arange(v.size).reshape(v.shape))
        if "bn" in jax.tree_util.keystr(path) else v, variables["params"])
    ref_logits, ref_feats = model.apply({**variables, "params": params}, x)
    plain, folded = inference_model(name, params, variables["batch_stats"])
    assert count_params(folded) == folded_count
    logits, feats = plain.apply({"params": folded}, x)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(feats, ref_feats, rtol=1e-4, atol=1e-4)


def test_vgg13_is_plain_unless_batch_norm_is_asked_for():
    plain = jax.eval_shape(lambda: init_params(build_model("vgg13"), jax.random.PRNGKey(0), 1))
    bn = jax.eval_shape(lambda: init_params(build_model("vgg13", batch_norm=True), jax.random.PRNGKey(0), 1))
    assert not any(k.startswith("bn") for k in plain)
    assert count_params(bn) - count_params(plain) == 3_840      # scale and bias of 1,920 channels


@pytest.mark.parametrize("name,size", [("light", 64), ("vgg13", 32)])
def test_dropout_false_trains_the_same_network_deterministically(name, size):
    x = jax.random.normal(jax.random.PRNGKey(1), (4, size, size, 1))

    def train_logits(dropout: bool, key: int):
        model = build_model(name, batch_norm=True, dropout=dropout)
        variables = init_variables(model, jax.random.PRNGKey(0), 1, size)
        (logits, _), _ = model.apply(variables, x, train=True, mutable=["batch_stats"],
                                     rngs={"dropout": jax.random.PRNGKey(key)})
        return np.asarray(logits)

    assert not np.allclose(train_logits(True, 0), train_logits(True, 1))
    np.testing.assert_array_equal(train_logits(False, 0), train_logits(False, 1))


def test_compiled_init_gives_the_op_by_op_parameters():
    """init_variables compiles the init as one function (less peak memory): the values must be
    those of the op-by-op init, so runs started before and after the change are the same."""
    model = build_model("light")
    compiled = init_variables(model, jax.random.PRNGKey(3), 2, 64)
    with jax.disable_jit():
        eager = init_variables(model, jax.random.PRNGKey(3), 2, 64)
    leaves = jax.tree.leaves(compiled)
    assert len(leaves) == len(jax.tree.leaves(eager)) > 10
    for a, b in zip(leaves, jax.tree.leaves(eager)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_flip_averaging_is_the_mean_of_each_face_and_its_mirror():
    from ferjax.train.step import predict_probs
    model = build_model("light", batch_norm=True, dropout=False)
    variables = init_variables(model, jax.random.PRNGKey(0), 1, 64)
    x = jax.random.normal(jax.random.PRNGKey(1), (3, 64, 64, 1))
    apply = lambda images: jax.nn.softmax(model.apply(variables, images, train=False)[0], -1)  # noqa: E731
    mean = 0.5 * (apply(x) + apply(x[:, :, ::-1]))
    assert not np.allclose(apply(x), apply(x[:, :, ::-1]), atol=1e-4)     # the mirror counts
    np.testing.assert_allclose(predict_probs(model.apply, variables, x, flip=True), mean, rtol=1e-5, atol=1e-6)
