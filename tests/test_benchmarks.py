"""Smoke tests of the benchmark suite: every benchmark function runs one step on tiny inputs.

Timings are never asserted, only that the numbers are finite and positive and that the
report has its keys. The peers are optional: their tests skip when PyTorch or Keras is absent.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY = dict(warmup=1, steps=1, image_size=16)
# One shape for every ferjax training call, so the K=1 step compiles once for the module.
STEP = dict(model="light", batch=2, features="O-S-L")


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bf():
    from benchmarks import bench_ferjax
    return bench_ferjax


def test_ferjax_infer(bf):
    r = bf.infer(model="light", batch=2, **TINY)
    assert positive(r["images_per_s"]) and r["conv"] == bf.default_conv() and r["devices"] >= 1


def test_ferjax_train_sequential_and_profile(bf):
    """The production step (K=1), its per-op profile, and the sweep's sequential baseline, all
    on one compiled step (the vmapped K>1 path: the smoke run and the vmap gradient test)."""
    r = bf.train(profile_steps=1, **STEP, **TINY)
    assert r["loss_finite"] and r["conv"] == bf.default_conv() and r["k"] == 1
    assert r["images_per_s"] == pytest.approx(r["images_per_s_per_config"]) and positive(r["images_per_s"])
    assert r["profile"]["top_ops"] and positive(r["profile"]["busy_ms_per_step"])
    assert any(op.get("source") for op in r["profile"]["top_ops"])   # labelled from the HLO
    sq = bf.sequential(k=2, **STEP, **TINY)
    assert positive(sq["images_per_s_per_config"]) and len(sq["median_step_s_per_config"]) == 2
    assert sq["images_per_s"] == pytest.approx(2 * sq["images_per_s_per_config"])
    g = bf.train(k=2, **STEP, **TINY)        # a group, stepped as the loop steps it on a CPU
    assert g["apart"] and g["loss_finite"] and g["k"] == 2
    assert g["images_per_s"] == pytest.approx(2 * g["images_per_s_per_config"])


def test_ferjax_ceiling_flops_probe(bf):
    assert positive(bf.ceiling(n=64, warmup=1, steps=1)["gflops"])
    f = bf.flops("light", "O", image_size=64)
    assert f["train_flops_per_image"] == 3 * f["forward_flops_per_image"] > 1e7
    p = bf.probe()
    assert p["default_conv"] in p["conv_impls"] and "lax" in p["conv_impls"]
    assert p["default_variant"].split("+")[0] == p["default_conv"]   # e.g. "xla+2dev" on 2 cores
    kg = bf.kernel_grads("light", batch=2, warmup=1, steps=1)
    assert [r["side"] for r in kg["layers"]] == [32, 16, 8, 4]
    assert all(positive(min(r["ms"].values())) and r["picked"] in r["ms"] for r in kg["layers"])


def test_rejected_candidates_compute_the_same_thing(bf):
    import jax
    import jax.numpy as jnp
    cf = bf.conv_forms(batch=2, shapes=((8, 3, 5),), rounds=1, steps=1)["layers"][0]
    assert cf["max_rel_error"] < 1e-5 and all(positive(min(v)) for v in cf["ms"].values())
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, 3, 4), np.float32))
    r = jnp.asarray(rng.standard_normal((2, 6, 6, 4), np.float32))
    from ferjax.models.conv import conv3x3_matmul
    grads = [jax.jit(jax.grad(lambda x, k, f=f: jnp.sum(f(x, k) * r), argnums=(0, 1)))(x, k)
             for f in (bf._winograd_f2x2_3x3, conv3x3_matmul)]
    for a, b in zip(*grads):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    sf = bf.sweep_forms(k=1, **STEP, **TINY)["images_per_s_per_config"]   # K=1: the cached step
    assert positive(sf["vmap"]) and positive(sf["map"])


def test_pipeline_and_fed_step(bf):
    r = bf.pipeline("O-S-L", n_images=64, batch=32)
    assert positive(r["images_per_s"]) and positive(r["images_per_cpu_s"])
    fed = bf.pipeline_fed(n_images=8, warmup=1, image_size=16, **STEP)
    assert positive(fed["images_per_s"]) and fed["images"] == 6 and 0 <= fed["data_wait_fraction"] < 1
    assert fed["backlog_s"] >= 0 and positive(fed["resident_step_s"]) and fed["pipeline_bound"] in (True, False)


def test_training_loop_against_its_step(bf):
    r = bf.loop(per_class=8, epochs=3, warmup=1, **STEP)
    assert r["steps_per_epoch"] == r["train_images"] // STEP["batch"] and r["loop_over_step"]["epochs"] == 2
    assert positive(r["images_per_s"]) and positive(r["step_images_per_s"])
    assert 0 < r["loop_over_step"]["median"] <= r["loop_over_step"]["max"]
    assert positive(r["own_step_images_per_s"]) and r["loop_over_own_step"]["epochs"] == 2
    # the same epochs over the two steps' times: the ratios scale by the steps' rates
    assert r["loop_over_own_step"]["median"] == pytest.approx(
        r["loop_over_step"]["median"] * r["own_step_images_per_s"] / r["step_images_per_s"])
    assert r["profile"] == "fast" and r["eval_flip"]


def test_torch_peer():
    pytest.importorskip("torch")
    from benchmarks import bench_torch as bt
    for model, params in (("vgg13", 8_757_704), ("light", 349_520)):
        assert bt.count_params(bt.build(model, 1)) == params
    assert bt.count_params(bt.build("light", 3)) == 349_520 + 2 * 864     # 864 per extra channel
    for fmt in ("contiguous", "channels_last"):
        assert positive(bt.train(model="light", batch=2, memory_format=fmt, **TINY)["images_per_s"])
    assert positive(bt.infer(model="light", batch=2, **TINY)["images_per_s"])
    assert positive(bt.ceiling(n=64, warmup=1, steps=1)["gflops"])


def test_keras_peer():
    pytest.importorskip("keras")
    from benchmarks import bench_keras as bk
    for model, params in (("vgg13", 8_757_704), ("light", 349_520)):
        net = bk.build(model, 1)
        assert sum(int(np.prod(w.shape)) for w in net.trainable_weights) == params
    r = bk.train(model="light", batch=2, jit_compile=False, **TINY)
    assert positive(r["images_per_s"]) and r["loss_finite"]
    assert positive(bk.infer(model="light", batch=2, jit_compile=False, **TINY)["images_per_s"])


def test_worker_process_reports_missing_and_peak_rss(tmp_path):
    """The subprocess path: a result with the kernel's peak RSS; a peer that cannot be
    imported comes back as 'missing', not as a crash."""
    from benchmarks.jobs import run_job
    rec = run_job("ferjax", "ceiling", {"n": 32, "warmup": 1, "steps": 1}, timeout=300)
    assert rec["status"] == "ok" and positive(rec["result"]["gflops"]) and positive(rec["peak_rss_mb"])
    stub = tmp_path / "torch"          # shadows an installed torch, as if it were absent
    stub.mkdir()
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    rec = run_job("torch", "probe", {}, timeout=300, pythonpath=(str(tmp_path),))
    assert rec["status"] == "missing" and "torch" in rec["error"] and rec["returncode"] == 3


def fake_record(rate, status="ok"):
    return {"status": status, "result": {"images_per_s": rate}, "peak_rss_mb": 100.0,
            "error": "ModuleNotFoundError: No module named 'torch'" if status == "missing" else ""}


def test_summary_and_report_keys():
    from benchmarks.comparison import Comparison
    from benchmarks.plan import TARGETS
    from benchmarks.report import markdown, target_lines
    from benchmarks.suite import parse_variant
    from benchmarks.summary import judge, summarize, summarize_targets, with_gflops
    assert parse_variant("xla+2dev") == ("xla", 2) and parse_variant("matmul") == ("matmul", None)
    variants = {"ferjax": {"matmul": [fake_record(120.0)], "lax": [fake_record(80.0)]},
                "torch": {"contiguous": [fake_record(None, "missing")],
                          "channels_last": [fake_record(None, "missing")]},
                "keras": {"jit": [fake_record(100.0)], "nojit": [fake_record(90.0)]}}
    entry = Comparison(workload="light_train_b64", task="train", model="light", batch=64,
                       features="O", channels=1, ferjax_default_conv="matmul",
                       flops={"forward_flops_per_image": 1e7, "train_flops_per_image": 3e7},
                       **summarize(variants, default={"ferjax": "matmul"}))
    entry = judge(entry, *TARGETS["train"])
    assert entry.best_peer == "keras" and entry.ratio_vs_best_peer == pytest.approx(1.2)
    assert entry.ratio_vs_torch is None and entry.target_met is None
    assert "torch" in entry.missing_peers
    # three rounds: each rate the median of its rounds, the ratio the median of the
    # per-round ratios (not the ratio of the medians), the kept variants' spreads beside them
    rounds = {"ferjax": {"matmul": [fake_record(x) for x in (100.0, 200.0, 150.0)]},
              "keras": {"jit": [fake_record(x) for x in (100.0, 180.0, 160.0)],
                        "nojit": [fake_record(x) for x in (90.0, 90.0, 95.0)]}}
    three = summarize(rounds, default={"ferjax": "matmul"})
    assert three["images_per_s"] == {"ferjax": 150.0, "keras": 160.0} and three["rounds"] == 3
    assert three["best_variant"]["keras"] == "jit" and three["best_peer"] == "keras"
    assert three["ratio_vs_best_peer"] == pytest.approx(1.0)          # of 1.0, 200/180, 150/160
    assert three["ratio_vs_best_peer_spread"] == pytest.approx([150 / 160, 200 / 180])
    assert three["images_per_s_spread"]["ferjax"] == [100.0, 200.0]
    entry = with_gflops(entry, ceiling=100.0)
    assert entry.achieved_gflops["ferjax"] == pytest.approx(3.6)
    assert entry.fraction_of_ceiling["ferjax"] == pytest.approx(0.036)
    sweep = Comparison(workload="sweep4_light", task="sweep", model="light", batch=64, features="O",
                       channels=1, conv="matmul", ks=[1, 4],
                       per_k=[{"k": k, "vmapped_per_config": 10.0 * k, "sequential_per_config": 10.0,
                               "ratio": float(k), "peak_rss_mb": {"vmapped": 1.0, "sequential": 1.0}}
                              for k in (1, 4)],
                       images_per_s={"ferjax": 40.0, "sequential": 10.0}, best_peer="sequential",
                       ratio_vs_best_peer=4.0)
    sweep = judge(sweep, *TARGETS["sweep"])
    assert sweep.target_met and sweep.target_met_all_k
    # the JSON of each kind: its own fields only, in a fixed order, the target as a dict
    train_json, sweep_json = entry.to_json(), sweep.to_json()
    assert list(train_json)[:7] == ["workload", "task", "model", "batch", "features", "channels",
                                    "ferjax_default_conv"]
    assert train_json["target"] == {"ratio": "ratio_vs_torch", "against": "torch", "min": 1.1}
    assert "per_k" not in train_json and "profile" not in train_json
    assert {"ratio_vs_torch", "missing_peers", "achieved_gflops"} <= train_json.keys()
    assert {"per_k", "ks", "unit", "target_met_all_k"} <= sweep_json.keys()
    assert "ratio_vs_torch" not in sweep_json and "achieved_gflops" not in sweep_json
    pipeline = {"train_images_per_s": {"O": 3000.0, "O-S-L": 2000.0},
                "train_images_per_cpu_s": {"O": 1600.0, "O-S-L": 1000.0}, "batch": 64,
                "n_images": 1024, "fastest_consumer_images_per_s": 600.0,
                "step_consumption_images_per_s": {"light_train_b64_osl": {"images_per_s": 600.0,
                                                                          "conv": "xla"}},
                "fed": {"workload": "light", "images_per_s": 500.0, "resident_images_per_s": 600.0,
                        "data_wait_fraction": 0.01, "data_wait_s": 0.1, "dispatch_s": 5.0,
                        "backlog_s": 1.0, "resident_step_s": 0.1, "wall_s": 10.0,
                        "pipeline_bound": False},
                "target_met": True}
    results = {"mode": "smoke", "started": "2026-01-01T00:00:00", "duration_s": 1.0,
               "machine": {"cpu": "x", "cores": {"usable": 2}, "load_average_start": [0.1],
                           "load_average_end": [0.1]},
               "versions": {"ferjax": {"jax": "j", "flax": "f", "default_conv": "matmul"},
                            "torch": {"available": False, "error": "No module named 'torch'"},
                            "keras": {"available": True, "keras": "3", "tensorflow": "2"}},
               "peers": {"torch": {"available": False, "error": "No module named 'torch'"},
                         "keras": {"available": True}},
               "ceiling": {"gflops": 100.0, "runs": [{"n": 64, "gflops": 100.0, "when": "start"}],
                           "torch_gflops": None},
               "flops": {"light/O": entry.flops}, "comparisons": [train_json, sweep_json],
               "pipeline": pipeline, "notes": ["n"]}
    results["targets"] = summarize_targets([entry, sweep], pipeline)
    assert {"comparisons", "ceiling", "pipeline", "machine", "targets"} <= results.keys()
    json.dumps(results)
    md = markdown(results)
    assert "Peer torch is missing" in md and "sweep4_light" in md and "light_train_b64" in md
    assert len(target_lines(results)) == 3


def test_suite_plans_and_reports_with_stand_in_jobs(tmp_path, monkeypatch):
    """The whole quick suite, every job answered by a stand-in (no process, no timing): the
    results.json keys the README names, and a report of them."""
    from benchmarks import suite as suite_mod
    from benchmarks.report import markdown

    def fake_job(framework, func, kwargs, timeout, log=None, devices=None, min_time=0.0):
        x = 100.0 + len(json.dumps(kwargs)) + (devices or 0)
        result = {"probe": {"jax": "j", "flax": "f", "default_conv": "xla", "default_variant": "xla+2dev",
                            "conv_impls": ["matmul", "lax", "xla"], "torch": "t", "keras": "k",
                            "tensorflow": "tf"},
                  "ceiling": {"gflops": 50.0},
                  "flops": {"forward_flops_per_image": 1e7, "train_flops_per_image": 3e7},
                  "pipeline": {"images_per_s": 3 * x, "images_per_cpu_s": x},
                  "loop": {"images_per_s": x, "own_step_images_per_s": 1.1 * x, "step_images_per_s": 1.3 * x,
                           "loop_over_own_step": {"median": 1.1, "max": 1.2, "epochs": 2},
                           "loop_over_step": {"median": 1.3, "max": 1.4, "epochs": 2},
                           "training_over_own_step": 1.05, "training_over_step": 1.25,
                           "epoch_over_training": 1.05, "profile": "fast", "eval_flip": True,
                           "steps_per_epoch": 10, "train_images": 640, "epochs": 3, "model": "light",
                           "batch": 64},
                  "pipeline_fed": {"images_per_s": x, "resident_images_per_s": x, "data_wait_fraction": 0.0,
                                   "data_wait_s": 0.0, "dispatch_s": 1.0, "backlog_s": 0.1,
                                   "resident_step_s": 0.1, "wall_s": 2.0, "pipeline_bound": False},
                  }.get(func, {"images_per_s": x, "images_per_s_per_config": x})
        rec = {"status": "ok", "result": result, "framework": framework, "func": func, "kwargs": kwargs,
               "wall_s": 0.0, "peak_rss_mb": 1.0, "devices": devices}
        if log:
            log(rec)
        return rec

    monkeypatch.setattr(suite_mod, "run_job", fake_job)
    monkeypatch.setattr(suite_mod, "cpu_busy_fraction", lambda: 0.0)
    monkeypatch.setattr(suite_mod, "cores", lambda: {"logical": 2, "usable": 2})
    results = suite_mod.Suite("quick", tmp_path, profile="all", verbose=False).run()
    json.dumps(results)
    assert [c["workload"] for c in results["comparisons"]] == suite_mod.MODES["quick"]["workloads"]
    for c in results["comparisons"]:
        assert positive(c["images_per_s"]["ferjax"]) and positive(c["ratio_vs_best_peer"])
        assert c["target"]["ratio"] in c and c["target_met"] in (True, False) and "profile" in c
    assert len(results["targets"]) == len(results["comparisons"]) + 2
    # three rounds of every kept rate: ferjax's default and each peer variant once per round
    # (the systems taking turns to go first), ferjax's other variants once
    assert results["settings"]["rounds"] == 3 and all(c["rounds"] == 3 for c in results["comparisons"])
    vgg = [(j["framework"], j["kwargs"].get("conv"), j.get("devices")) for j in results["jobs"]
           if j["func"] == "train" and j["kwargs"]["model"] == "vgg13" and "profile_steps" not in j["kwargs"]]
    assert vgg.count(("ferjax", "xla", 2)) == 3 and vgg.count(("ferjax", "matmul", None)) == 1
    assert sum(fw == "torch" for fw, _, _ in vgg) == 6
    firsts = [fw for i, (fw, _, _) in enumerate(vgg) if i == 0 or vgg[i - 1][0] != fw]
    assert firsts[:3] == ["ferjax", "torch", "keras"] and firsts[3:6] == ["torch", "keras", "ferjax"]
    assert results["loop"]["step_share"] == pytest.approx(1 / 1.1) and results["loop"]["target_met"]
    assert (tmp_path / "jobs.jsonl").read_text().count("\n") == len(results["jobs"])
    md = markdown(results)
    assert "## Sweep: sweep4_light" in md and "## Training loop" in md and "1.100x" in md and "1.300x" in md


# ---------------------------------------------------------------- the "xla" conv variant

def _rel(a, b) -> float:
    import numpy as np
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.mark.parametrize("shape", [(2, 16, 16, 1, 64), (2, 8, 8, 64, 64), (2, 8, 8, 24, 48)])
def test_xla_conv_layer_gradients_equal_matmul(shape):
    """'xla' (XLA's convolution) computes the same function and gradients as 'matmul'."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from ferjax.models.conv import conv3x3_matmul
    b, h, w, c, co = shape
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((b, h, w, c), np.float32))
    k = jnp.asarray(rng.standard_normal((3, 3, c, co), np.float32) * 0.1)
    r = jnp.asarray(rng.standard_normal((b, h, w, co), np.float32))
    xla = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731 - what nn.Conv("SAME") runs
        x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    grads = {name: jax.jit(jax.grad(lambda x, k: jnp.sum(f(x, k) * r), argnums=(0, 1)))(x, k)
             for name, f in (("matmul", conv3x3_matmul), ("xla", xla))}
    assert _rel(xla(x, k), conv3x3_matmul(x, k)) < 1e-5
    for a, ref in zip(grads["xla"], grads["matmul"]):
        assert _rel(a, ref) < 1e-4


@pytest.mark.parametrize("model", ["light"])
def test_xla_model_gradients_equal_matmul(model):
    """The whole model's loss gradient, parameter by parameter, under 'xla' and 'matmul'
    (same parameters: both are 'kernel' (3,3,Cin,Cout) + 'bias')."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from ferjax.losses import softmax_cross_entropy
    from ferjax.models import build_model, init_variables
    from ferjax.models.conv import CONV_IMPLS
    assert "xla" in CONV_IMPLS
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((2, 16, 16, 3), np.float32))
    t = jax.nn.one_hot(jnp.asarray([1, 5]), 8)
    variables = init_variables(build_model(model, "matmul"), jax.random.PRNGKey(0), 3, 16)
    params = variables["params"]

    def grads(conv):
        net = build_model(model, conv)
        loss = lambda p: softmax_cross_entropy(net.apply({**variables, "params": p}, x)[0], t)  # noqa: E731
        return jax.jit(jax.value_and_grad(loss))(params)

    (l_mm, g_mm), (l_xla, g_xla) = grads("matmul"), grads("xla")
    assert abs(float(l_mm) - float(l_xla)) <= 1e-5 * abs(float(l_mm))
    flat_mm, flat_xla = jax.tree.leaves(g_mm), jax.tree.leaves(g_xla)
    assert jax.tree.structure(g_mm) == jax.tree.structure(g_xla) and len(flat_mm) > 4
    for a, ref in zip(flat_xla, flat_mm):
        assert _rel(a, ref) < 1e-4


def test_kernel_grad_method_follows_the_convolution_library():
    from ferjax.models.conv import kernel_grad_method
    assert [kernel_grad_method(s, s, c, eigen=True) for s, c in ((64, 1), (8, 6), (64, 64))] == \
        ["im2col", "conv", "conv"]
    assert [kernel_grad_method(s, s, c, eigen=False) for s, c in ((64, 1), (8, 6), (4, 6), (64, 64))] == \
        ["im2col", "shifted", "conv", "conv"]


@pytest.mark.parametrize("x_batched", [False, True])
@pytest.mark.parametrize("side, cin, method", [(4, 6, "conv"), (8, 6, "shifted"), (8, 2, "im2col")])
def test_xla_vmapped_gradients_equal_matmul(x_batched, side, cin, method, monkeypatch):
    """Vmapped over stacked kernels (a sweep), 'xla' runs one convolution per member
    (custom_vmap rules inside a custom_vjp): the same values and gradients as 'matmul', member
    by member, for a shared input (a first layer) and a per-member input (every later layer),
    with each way of computing the weight gradient."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from ferjax.models import conv
    from ferjax.models.conv import conv3x3_matmul, conv3x3_xla
    monkeypatch.setattr(conv, "kernel_grad_method", lambda *shape: method)
    rng = np.random.default_rng(2)
    k_members = 3
    x = rng.standard_normal(((k_members,) if x_batched else ()) + (2, side, side, cin), np.float32)
    k = jnp.asarray(rng.standard_normal((k_members, 3, 3, cin, 5), np.float32) * 0.2)
    r = jnp.asarray(rng.standard_normal((k_members, 2, side, side, 5), np.float32))
    x = jnp.asarray(x)

    def grads(f):
        loss = lambda k, x, r: jnp.sum(jnp.tanh(f(x, k)) * r)  # noqa: E731 - smooth, no kinks
        return jax.jit(jax.vmap(jax.value_and_grad(loss, argnums=(0, 1)),
                                in_axes=(0, 0 if x_batched else None, 0)))(k, x, r)

    (l_xla, g_xla), (l_mm, g_mm) = grads(conv3x3_xla), grads(conv3x3_matmul)
    assert _rel(l_xla, l_mm) < 1e-5
    for a, ref in zip(g_xla, g_mm):
        assert a.shape == ref.shape
        for m in range(k_members):
            assert _rel(a[m], ref[m]) < 1e-4


def test_time_to_accuracy_reads_first_epoch_over_each_threshold(tmp_path):
    from benchmarks.time_to_accuracy import time_to_accuracy
    lines = [{"epoch": e, "valid_accuracy": a, "wall_seconds": 60.0 * e, "train_seconds": t}
             for e, a, t in ((1, 70.0, 55.0), (2, 81.0, 50.0), (3, 80.5, 48.0), (4, 83.0, 40.0))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = time_to_accuracy(tmp_path / "metrics.jsonl", [80, 82, 84])
    assert r["reached"]["80"] == {"epoch": 2, "minutes": 2.0}
    assert r["reached"]["82"]["epoch"] == 4 and r["reached"]["84"] is None
    assert r["best_valid"] == 83.0 and r["epochs"] == 4
    assert r["loop_over_steps"] == {"median": 60.0 / 48.0, "max": 60.0 / 40.0, "epochs": 3}


def test_time_to_accuracy_of_a_resumed_run_sums_its_calls(tmp_path):
    """A resumed call restarts wall_seconds: times add up over the calls, never go back."""
    from benchmarks.time_to_accuracy import time_to_accuracy
    walls = (100.0, 200.0, 50.0, 150.0)           # killed after epoch 2, resumed (50 s of start-up)
    lines = [{"epoch": e + 1, "valid_accuracy": a, "wall_seconds": w, "train_seconds": 90.0}
             for e, (a, w) in enumerate(zip((79.0, 81.0, 83.0, 84.5), walls))]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = time_to_accuracy(tmp_path / "metrics.jsonl", [80, 84])
    assert r["calls"] == 2 and r["minutes"] == 350.0 / 60
    assert r["reached"]["80"]["minutes"] == 200.0 / 60 and r["reached"]["84"]["minutes"] == 350.0 / 60
    assert r["loop_over_steps"]["epochs"] == 2     # the epoch after the resume is not a loop epoch


def test_profile_counts_hlo_ops_on_the_calling_thread_and_drops_its_bookkeeping(tmp_path):
    """A CPU client may run a program on the Python thread: its HLO ops count, its own
    dispatch events do not."""
    import gzip
    from benchmarks.common import top_ops_from_trace
    hlo = "ENTRY %main {\n  %fusion.1 = f32[8]{0} fusion(%p), kind=kLoop\n}\n"
    events = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "python"}},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "tf_XLAEigen/1"}},
              {"ph": "X", "name": "fusion.1", "pid": 1, "tid": 1, "dur": 3000},
              {"ph": "X", "name": "fusion.1", "pid": 1, "tid": 2, "dur": 1000},
              {"ph": "X", "name": "PjitFunction(step)", "pid": 1, "tid": 1, "dur": 9000},
              {"ph": "X", "name": "py_dispatch", "pid": 1, "tid": 1, "dur": 5000}]
    (tmp_path / "t").mkdir()
    with gzip.open(tmp_path / "t" / "x.trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    p = top_ops_from_trace(str(tmp_path), steps=1, hlo_text=hlo)
    assert p["busy_ms_per_step"] == 4.0 and [o["op"] for o in p["top_ops"]] == ["fusion.1"]
    assert p["top_ops"][0]["shape"] == "f32[8]"


def test_profile_counts_an_asynchronous_op_from_its_start_to_its_end_event(tmp_path):
    """Eigen's convolutions run asynchronously: a 10 us start event, the work untraced, an
    'end:' event 2 ms later. The op counts 2 ms, not 10 us."""
    import gzip
    from benchmarks.common import top_ops_from_trace
    events = [{"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "tf_XLAEigen/1"}},
              {"ph": "X", "name": "convolution.3", "pid": 1, "tid": 2, "ts": 100, "dur": 10},
              {"ph": "X", "name": "fusion.1", "pid": 1, "tid": 2, "ts": 120, "dur": 500},
              {"ph": "X", "name": "end: fusion.1", "pid": 1, "tid": 2, "ts": 620, "dur": 0},
              {"ph": "X", "name": "end: convolution.3", "pid": 1, "tid": 2, "ts": 2090, "dur": 10}]
    (tmp_path / "t").mkdir()
    with gzip.open(tmp_path / "t" / "x.trace.json.gz", "wt") as f:
        json.dump({"traceEvents": events}, f)
    p = top_ops_from_trace(str(tmp_path), steps=1)
    ms = {o["op"]: o["ms_per_step"] for o in p["top_ops"]}
    assert ms == {"convolution.3": 2.0, "fusion.1": 0.5}

