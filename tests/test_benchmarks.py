"""Smoke tests of the benchmark suite: every benchmark function runs one step on tiny inputs.

Timings are never asserted, only that the numbers are finite and positive and that the
report has its keys. The peers are optional: their tests skip when PyTorch or Keras is absent.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TINY = dict(warmup=1, steps=1, image_size=16)


def positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def bf():
    from benchmarks import bench_ferjax
    return bench_ferjax


def test_ferjax_train_and_profile(bf):
    r = bf.train(model="light", batch=2, features="O-S-L", profile_steps=1, **TINY)
    assert positive(r["images_per_s"]) and r["loss_finite"] and r["conv"] == bf.default_conv()
    assert r["profile"]["top_ops"] and positive(r["profile"]["busy_ms_per_step"])


@pytest.mark.parametrize("conv", ["lax"])
def test_ferjax_infer(bf, conv):
    r = bf.infer(model="light", batch=2, conv=conv, **TINY)
    assert positive(r["images_per_s"]) and r["conv"] == conv


def test_ferjax_sweep_and_sequential(bf):
    vm = bf.train(model="light", batch=2, k=2, **TINY)
    sq = bf.sequential(model="light", batch=2, k=2, **TINY)
    assert positive(vm["images_per_s_per_config"]) and vm["images_per_s"] > vm["images_per_s_per_config"]
    assert positive(sq["images_per_s_per_config"]) and len(sq["median_step_s_per_config"]) == 2


def test_ferjax_ceiling_flops_probe(bf):
    assert positive(bf.ceiling(n=64, warmup=1, steps=1)["gflops"])
    f = bf.flops("light", "O", image_size=64)
    assert f["train_flops_per_image"] == 3 * f["forward_flops_per_image"] > 1e7
    p = bf.probe()
    assert p["default_conv"] in p["conv_impls"] and "lax" in p["conv_impls"]


def test_pipeline_and_fed_step(bf):
    r = bf.pipeline("O-S-L", n_images=64, batch=32)
    assert positive(r["images_per_s"]) and positive(r["images_per_cpu_s"])
    fed = bf.pipeline_fed(model="light", batch=16, features="O-S-L", n_images=64, warmup=1)
    assert positive(fed["images_per_s"]) and fed["images"] == 48 and 0 <= fed["wait_fraction"] < 1


def test_torch_peer():
    pytest.importorskip("torch")
    from benchmarks import bench_torch as bt
    for model, params in (("vgg13", 8_757_704), ("light", 361_072)):
        assert bt.count_params(bt.build(model, 1)) == params
    assert bt.count_params(bt.build("light", 3)) == 362_800
    for fmt in ("contiguous", "channels_last"):
        assert positive(bt.train(model="light", batch=2, memory_format=fmt, **TINY)["images_per_s"])
    assert positive(bt.infer(model="light", batch=2, **TINY)["images_per_s"])
    assert positive(bt.ceiling(n=64, warmup=1, steps=1)["gflops"])


def test_keras_peer():
    pytest.importorskip("keras")
    from benchmarks import bench_keras as bk
    for model, params in (("vgg13", 8_757_704), ("light", 361_072)):
        assert bk.build(model, 1).count_params() == params
    r = bk.train(model="light", batch=2, jit_compile=False, **TINY)
    assert positive(r["images_per_s"]) and r["loss_finite"]
    assert positive(bk.infer(model="light", batch=2, jit_compile=False, **TINY)["images_per_s"])


def test_worker_process_reports_missing_and_peak_rss(tmp_path):
    """The subprocess path: a result with the kernel's peak RSS; a peer that cannot be
    imported comes back as 'missing', not as a crash."""
    from benchmarks import run
    rec = run.run_job("ferjax", "ceiling", {"n": 32, "warmup": 1, "steps": 1}, timeout=300)
    assert rec["status"] == "ok" and positive(rec["result"]["gflops"]) and positive(rec["peak_rss_mb"])
    stub = tmp_path / "torch"          # shadows an installed torch, as if it were absent
    stub.mkdir()
    (stub / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    rec = run.run_job("torch", "probe", {}, timeout=300, pythonpath=(str(tmp_path),))
    assert rec["status"] == "missing" and "torch" in rec["error"] and rec["returncode"] == 3


def fake_record(rate, status="ok"):
    return {"status": status, "result": {"images_per_s": rate}, "peak_rss_mb": 100.0,
            "error": "ModuleNotFoundError: No module named 'torch'" if status == "missing" else ""}


def test_summary_and_report_keys(tmp_path):
    from benchmarks import run
    variants = {"ferjax": {"matmul": fake_record(120.0), "lax": fake_record(80.0)},
                "torch": {"contiguous": fake_record(None, "missing"),
                          "channels_last": fake_record(None, "missing")},
                "keras": {"jit": fake_record(100.0), "nojit": fake_record(90.0)}}
    entry = {"workload": "light_train_b64", "task": "train", "model": "light", "batch": 64,
             "features": "O", "channels": 1, "ferjax_default_conv": "matmul"}
    entry.update(run.summarize(variants, default={"ferjax": "matmul"}))
    run.judge(entry, *run.TARGETS["train"])
    assert entry["best_peer"] == "keras" and entry["ratio_vs_best_peer"] == pytest.approx(1.2)
    assert entry["ratio_vs_torch"] is None and entry["target_met"] is None
    assert "torch" in entry["missing_peers"]
    entry["flops"] = {"forward_flops_per_image": 1e7, "train_flops_per_image": 3e7}
    suite = run.Suite("smoke", tmp_path, verbose=False)
    suite.add_gflops(entry, ceiling=100.0)
    assert entry["achieved_gflops"]["ferjax"] == pytest.approx(3.6)
    sweep = {"workload": "sweep4_light", "task": "sweep", "model": "light", "batch": 64,
             "features": "O", "conv": "matmul", "ks": [1, 4],
             "per_k": [{"k": k, "vmapped_per_config": 10.0 * k, "sequential_per_config": 10.0,
                        "ratio": float(k), "peak_rss_mb": {"vmapped": 1.0, "sequential": 1.0}}
                       for k in (1, 4)],
             "images_per_s": {"ferjax": 40.0, "sequential": 10.0}, "ratio_vs_best_peer": 4.0}
    run.judge(sweep, *run.TARGETS["sweep"])
    pipeline = {"train_images_per_s": {"O": 3000.0, "O-S-L": 2000.0},
                "train_images_per_cpu_s": {"O": 1600.0, "O-S-L": 1000.0}, "batch": 64,
                "n_images": 1024, "step_consumption_images_per_s": {"light_train_b64_osl": 600.0},
                "fed": {"workload": "light", "images_per_s": 500.0, "wait_fraction": 0.01,
                        "resident_batch_images_per_s": 600.0},
                "max_wait_fraction": 0.05, "target_met": True}
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
               "flops": {"light/O": entry["flops"]}, "comparisons": [entry, sweep],
               "pipeline": pipeline, "notes": ["n"]}
    results["targets"] = run.summarize_targets(results["comparisons"], pipeline)
    assert {"comparisons", "ceiling", "pipeline", "machine", "targets"} <= results.keys()
    json.dumps(results)
    md = run.markdown(results)
    assert "Peer torch is missing" in md and "sweep4_light" in md and "light_train_b64" in md
