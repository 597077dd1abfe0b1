"""Multi-device paths on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=2 in a subprocess
(the flag must be set before JAX starts)."""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    assert jax.device_count() == 2, jax.devices()
    from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
    from ferjax.train.group import Placement, create_states, member

    def cfg(lam, seed):
        return RunConfig(data=DataConfig(features="O-L", batch_size=16), model=ModelConfig(name="light"),
                         loss=LossConfig(lam=lam), seed=seed, data_seed=0)

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 16).astype(np.int32)
    batches = [{"image": rng.standard_normal((16, 64, 64, 2)).astype(np.float32),
                "target": np.eye(8, dtype=np.float32)[labels], "label": labels} for _ in range(2)]

    def run(cfgs, devices):
        pl = Placement.create(len(cfgs), 16, devices)
        state, step = pl.put_state(create_states(cfgs, 10)), pl.train_step()
        for b in batches:
            state, m = step(state, pl.put_batch(b))
        return pl, state

    group = [cfg(0.0, 0), cfg(0.5, 1)]
    pl, sharded = run(group, jax.devices())
    assert pl.mesh.shape == {"runs": 2, "data": 1}, pl.mesh.shape
    assert len(sharded.params["fc"]["kernel"].sharding.device_set) == 2
    _, single = run(group, jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)

    pl, dp = run([cfg(0.1, 3)], jax.devices())          # one run: data parallel over 2 devices
    assert pl.mesh.shape == {"runs": 1, "data": 2}, pl.mesh.shape
    _, ref = run([cfg(0.1, 3)], jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(dp.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(dp.centers), np.asarray(ref.centers), atol=1e-5)

    # the training loop's placement for the "xla" conv: the batch over both devices, every run on each
    pl = Placement.for_group(2, 16, "xla")
    assert pl.mesh.shape == {"runs": 1, "data": 2}, pl.mesh.shape
    state, step = pl.put_state(create_states(group, 10)), pl.train_step()
    for b in batches:
        state, _ = step(state, pl.put_batch(b))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)
    print("SHARDING-OK")
""")


def test_sweep_sharded_and_data_parallel_equal_single_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "SHARDING-OK" in out.stdout


def test_use_cpu_cores_splits_the_host_before_jax_starts():
    script = textwrap.dedent("""
        import jax
        from ferjax.devices import use_cpu_cores
        assert use_cpu_cores(3) == 3
        assert jax.device_count() == 3, jax.devices()
        import warnings
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert use_cpu_cores(2) is None          # too late: JAX has started
        assert "ignored" in str(w[0].message) and jax.device_count() == 3
        print("DEVICES-OK")
    """)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | {"JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "DEVICES-OK" in out.stdout
