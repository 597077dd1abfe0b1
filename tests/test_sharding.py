"""Multi-device paths on CPU: XLA_FLAGS=--xla_force_host_platform_device_count=2 in a subprocess
(the flag must be set before JAX starts)."""
import ctypes
import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import jax, numpy as np
    assert jax.device_count() == 2, jax.devices()
    from ferjax.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig
    from ferjax.train.group import Placement, create_states, member

    def cfg(lam, seed):
        return RunConfig(data=DataConfig(features="O-L", batch_size=16), model=ModelConfig(name="light"),
                         loss=LossConfig(lam=lam), seed=seed, data_seed=0,
                         # SGD: its update is linear in the gradient, so float-order noise stays
                         # noise (Adam's first steps turn near-zero gradients into +-lr)
                         optim=OptimConfig(optimizer="sgd", learning_rate=0.01))

    from ferjax.data.records import LabeledSplit
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, 32).astype(np.int32)
    split = LabeledSplit(rng.integers(0, 256, (32, 48, 48)).astype(np.uint8),
                         np.eye(8, dtype=np.float32)[labels], labels)
    batches = [np.arange(16, dtype=np.int32), np.arange(16, 32, dtype=np.int32)[::-1].copy()]
    key = jax.random.PRNGKey(0)

    def train(pl, state, cfgs):
        step, data = pl.train_step(cfgs[0]), pl.put_data(split)
        for i, idx in enumerate(batches):
            state, m = step(state, data, pl.put_indices(idx), key, np.int32(0), np.int32(i))
        return state

    def run(cfgs, devices):
        pl = Placement.create(len(cfgs), 16, devices)
        return pl, train(pl, pl.put_state(create_states(cfgs, 10)), cfgs)

    group = [cfg(0.0, 0), cfg(0.5, 1)]
    pl, sharded = run(group, jax.devices())
    assert pl.mesh.shape == {"runs": 2, "data": 1}, pl.mesh.shape
    assert len(sharded.params["fc"]["kernel"].sharding.device_set) == 2
    _, single = run(group, jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(sharded.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)

    pl, dp = run([cfg(0.1, 3)], jax.devices())          # one run: data parallel over 2 devices
    assert pl.mesh.shape == {"runs": 1, "data": 2}, pl.mesh.shape
    _, ref = run([cfg(0.1, 3)], jax.devices()[:1])
    for a, b in zip(jax.tree.leaves(dp.params), jax.tree.leaves(ref.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(dp.centers), np.asarray(ref.centers), atol=1e-5)
    for a, b in zip(jax.tree.leaves(dp.batch_stats), jax.tree.leaves(ref.batch_stats)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)

    # the training loop's placement: one run per device, each stepped on its own device
    pl = Placement.create(2, 16)
    assert pl.mesh.shape == {"runs": 2, "data": 1}, pl.mesh.shape
    assert "all-reduce" not in pl.train_step(group[0]).lower(
        pl.put_state(create_states(group, 10)), pl.put_data(split), pl.put_indices(batches[0]),
        key, np.int32(0), np.int32(0)).compile().as_text()
    state = train(pl, pl.put_state(create_states(group, 10)), group)
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)

    # what the loop does on a CPU host: the runs apart, each its own program on its own device
    from ferjax.train.apart import Layout
    layout = Layout.create(2, 16)
    assert [p.mesh.devices.item() for p in layout.pieces] == jax.devices(), layout
    states = layout.split(layout.group.put_state(create_states(group, 10)))
    apart = layout.join([train(p, s, group) for p, s in zip(layout.pieces, states)])
    for a, b in zip(jax.tree.leaves(apart.params), jax.tree.leaves(single.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-4)
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


def test_share_malloc_arena_gives_other_threads_the_main_arena():
    script = textwrap.dedent("""
        import ctypes, os, sys, threading
        from ferjax.devices import share_malloc_arena
        if sys.argv[1] == "user":
            os.environ["MALLOC_ARENA_MAX"] = "4"
            assert share_malloc_arena() is False     # the user's setting wins
            print("ARENA-OK"); sys.exit()
        if sys.argv[1] == "late":
            import jax
            jax.numpy.zeros(1).block_until_ready()
            assert share_malloc_arena() is False     # JAX has started: too late, left alone
            print("ARENA-OK"); sys.exit()
        assert share_malloc_arena() is True
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                                       "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
        libc = ctypes.CDLL(None)
        libc.mallinfo2.restype, libc.malloc.restype = Info, ctypes.c_void_p
        before, held = libc.mallinfo2().uordblks, []
        t = threading.Thread(target=lambda: held.append(libc.malloc(4 << 20)))
        t.start(); t.join()
        grew = libc.mallinfo2().uordblks - before     # mallinfo2 counts the main arena only
        assert grew >= 4 << 20, grew
        print("ARENA-OK")
    """)
    if sys.platform != "linux" or not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc 2.33 or later")
    for mode in ("ferjax", "user", "late"):
        assert "ARENA-OK" in _run_without_malloc_env(script, mode)


def test_release_freed_memory_returns_a_threads_freed_heap_to_the_os():
    # A thread's arena with every other 64 KB block freed: holes glibc keeps until trimmed.
    script = textwrap.dedent("""
        import ctypes, threading
        from ferjax.devices import release_freed_memory
        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        libc.free.argtypes = [ctypes.c_void_p]
        rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096   # noqa: E731
        def fill():
            blocks = [libc.malloc(64 << 10) for _ in range(4000)]
            for b in blocks:
                ctypes.memset(b, 1, 64 << 10)
            for b in blocks[::2]:
                libc.free(b)
        t = threading.Thread(target=fill); t.start(); t.join()
        before = rss()
        assert release_freed_memory() is True
        print("RELEASED-MB", (before - rss()) >> 20)
    """)
    if sys.platform != "linux" or not hasattr(ctypes.CDLL(None), "malloc_trim"):
        pytest.skip("needs glibc")
    out = _run_without_malloc_env(script)
    released = int(out.split("RELEASED-MB")[1])
    assert released >= 100, out      # 2000 freed blocks of 64 KB: 125 MB of holes


def test_restart_with_huge_pages_starts_the_program_again_once_on_huge_pages():
    script = textwrap.dedent("""
        import ctypes, os, sys
        from ferjax.devices import restart_with_huge_pages
        print("START", os.getpid(), flush=False)      # restarting flushes it first
        restart_with_huge_pages()
        libc = ctypes.CDLL(None)
        libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
        block = libc.malloc(64 << 20)
        ctypes.memset(block, 1, 64 << 20)
        huge = [int(line.split()[1]) for line in open("/proc/self/smaps_rollup")
                if line.startswith("AnonHugePages:")][0]
        print("TUNABLES", os.environ.get("GLIBC_TUNABLES"), "HUGE-KB", huge)
    """)
    from ferjax.devices import huge_page_env
    if huge_page_env({}) is None:
        pytest.skip("needs Linux, glibc 2.35 or later and transparent huge pages")

    def run(**env):
        out = _run_script(script, "an-argument", drop=("GLIBC_TUNABLES", "FERJAX_HUGE_PAGES"), add=env)
        starts = [line.split()[1] for line in out.splitlines() if line.startswith("START")]
        tunables, _, huge_kb = out.split("TUNABLES")[1].split()
        return starts, tunables, int(huge_kb)

    starts, tunables, huge_kb = run(GLIBC_TUNABLES="glibc.malloc.check=0")
    assert len(starts) == 2 and starts[0] == starts[1]       # the same process, started again once
    assert tunables == "glibc.malloc.check=0:glibc.malloc.hugetlb=1"   # the user's tunables kept
    assert huge_kb >= 32 << 10                               # most of the 64 MB block on huge pages
    for env in ({"FERJAX_HUGE_PAGES": "0"}, {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}):
        starts, tunables, huge_kb = run(**env)              # asked not to: left as it is
        assert len(starts) == 1 and "hugetlb=1" not in tunables and huge_kb < 32 << 10


def _run_without_malloc_env(script: str, *args: str) -> str:
    """stdout of `script` in a fresh interpreter whose environment sets no MALLOC_* variable."""
    return _run_script(script, *args, drop=("MALLOC_",))


def _run_script(script: str, *args: str, drop: tuple[str, ...] = (), add: dict | None = None) -> str:
    """stdout of `script` in a fresh interpreter, without the environment variables whose
    names start with one of `drop`, with `add`; it must succeed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    out = subprocess.run([sys.executable, "-c", script, *args], env={**env, **(add or {})},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout
