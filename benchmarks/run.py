"""ferjax's benchmark suite: ferjax vs PyTorch and Keras 3, same models and batches, on CPU.

ferjax against PyTorch and Keras 3 (TensorFlow) on the same models, batches and input
shapes, on this machine's CPU.

    python benchmarks/run.py --out DIR            # the full suite (~1.5 h on 2 cores)
    python benchmarks/run.py --quick --out DIR    # fewer workloads and steps (a few minutes)

Writes DIR/results.json and DIR/results.md. Run it on an otherwise idle machine: every
number is a wall-clock rate, and the report records the load average before each job.

Each measurement runs in its own process (this script re-invoked with --worker), so peak
RSS is per process and a crash or a missing peer costs only that entry. Peers are optional
(`pip install -e .[bench]` adds PyTorch); a peer that cannot be imported is reported as
missing and the suite carries on.

What is measured (see results.md for the numbers and the notes):
* training: images/s of ferjax's production step (the vmapped, donated step of
  ferjax.train.group with center loss and center update; K=1) for each conv implementation,
  PyTorch (channels_last and NCHW, the faster kept) and Keras (jit_compile True and False,
  the faster kept); Adam + softmax cross-entropy, the same resident random batch every step;
* inference: the jitted forward pass (ferjax), inference_mode (PyTorch), predict_on_batch (Keras);
* the sweep: K configurations vmapped in one step vs the same K run one after another;
* the float32 matmul ceiling through jax, and achieved GFLOP/s from a stated FLOP count;
* the tf.data input pipeline (O and O-S-L) against the step's consumption rate, and the step
  fed by the pipeline (share of wall time spent waiting for a batch);
* for every missed target, a per-op profile of ferjax's step (jax.profiler trace).
The median of the timed steps after warm-up is reported (at least `steps` of them, more
until they add up to 10 s (full) or 3 s (--quick)); the first step (compilation) apart.
ferjax runs each step on one XLA CPU device and, as "<conv>+<n>dev", on the host split into
one device per core (the batch, or a sweep's runs, sharded by ferjax's Placement).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.common import (channels_of, cores, cpu_busy_fraction, cpu_model,  # noqa: E402
                               load_average)

# ---------------------------------------------------------------- what is measured

WORKLOADS = {
    "vgg13_train_b64": dict(task="train", model="vgg13", batch=64, features="O"),
    "vgg13_train_b32": dict(task="train", model="vgg13", batch=32, features="O"),
    "light_train_b64": dict(task="train", model="light", batch=64, features="O"),
    "light_train_b32": dict(task="train", model="light", batch=32, features="O"),
    "vgg13_train_b64_osl": dict(task="train", model="vgg13", batch=64, features="O-S-L"),
    "light_train_b64_osl": dict(task="train", model="light", batch=64, features="O-S-L"),
    "vgg13_infer_b256": dict(task="infer", model="vgg13", batch=256, features="O"),
    "light_infer_b256": dict(task="infer", model="light", batch=256, features="O"),
    "sweep8_light": dict(task="sweep", model="light", batch=64, features="O", ks=(1, 2, 4, 8)),
    "sweep4_light": dict(task="sweep", model="light", batch=64, features="O", ks=(1, 4)),
}

MODES = {
    "full": dict(workloads=["vgg13_train_b64", "vgg13_train_b32", "light_train_b64",
                            "light_train_b32", "vgg13_train_b64_osl", "light_train_b64_osl",
                            "vgg13_infer_b256", "light_infer_b256", "sweep8_light"],
                 warmup=3, steps=10, ceiling_n=(2048, 4096), pipeline_images=10240,
                 fed_images=5120, profile_steps=3, timeout=3600, batch_cap=None,
                 skip_convs=(), conv_layers=True, min_time=10.0),
    # A few minutes: one workload per target kind, ferjax's "lax" path left out.
    "quick": dict(workloads=["vgg13_train_b32", "light_train_b64", "light_infer_b256",
                             "sweep4_light"],
                  warmup=2, steps=3, ceiling_n=(2048,), pipeline_images=2560,
                  fed_images=1920, profile_steps=2, timeout=1200, batch_cap=None,
                  skip_convs=("lax",), conv_layers=False, min_time=3.0),
    # Only checks that every path runs: one step each, batches capped at 8.
    "smoke": dict(workloads=["vgg13_train_b32", "light_train_b64", "light_train_b64_osl",
                             "vgg13_infer_b256", "light_infer_b256", "sweep4_light"],
                  warmup=1, steps=1, ceiling_n=(256,), pipeline_images=256,
                  fed_images=256, profile_steps=1, timeout=900, batch_cap=8,
                  skip_convs=(), conv_layers=True, min_time=0.0),
}

# task -> (the peer the ratio is taken against, the ratio to reach)
TARGETS = {"train": ("torch", 1.1), "infer": ("best peer", 1.2), "sweep": ("sequential", 1.0)}

PEERS = {"torch": [("memory_format", "contiguous"), ("memory_format", "channels_last")],
         "keras": [("jit_compile", True), ("jit_compile", False)]}
MODULES = {"ferjax": "benchmarks.bench_ferjax", "torch": "benchmarks.bench_torch",
           "keras": "benchmarks.bench_keras"}
PEER_MODULES = {"torch": {"torch"}, "keras": {"keras", "tensorflow"}}

NOTES = [
    "Every framework trains on the same resident random batch (N(0,1) images, one-hot "
    "targets); the input pipeline is measured separately.",
    "ferjax's training step is its production step: ferjax.train.group's jitted, vmapped (K=1), "
    "donated step, including the center loss (lambda=0.1) and Wen's center update. The peers "
    "train with Adam + softmax cross-entropy only (center loss skipped: an 8-row update on "
    "96/1024-wide features, negligible next to the convolutions).",
    "PyTorch: eager mode, torch.set_num_threads(2), Adam (default foreach implementation); "
    "channels_last and default (NCHW) memory format are both run and the faster is kept. "
    "torch.compile was not tried.",
    "Keras 3 on TensorFlow: train_on_batch / predict_on_batch with jit_compile=True and False; "
    "the faster is kept.",
    "Training FLOPs are stated as 3 x the forward FLOPs of XLA's cost analysis of the 'lax' "
    "(nn.Conv) model (forward + input gradient + weight gradient).",
    "ferjax's headline number is what `ferjax train` runs by default: the default conv "
    "(ModelConfig().conv, 'auto': 'xla' on CPU) on one XLA CPU device per core "
    "(ferjax.devices, `--cpu-devices`); the other variants are listed beside it (`--conv`). "
    "'matmul': im2col + GEMM; 'lax': flax nn.Conv and nn.max_pool; 'xla': XLA's convolution "
    "with the reshape max-pool and a per-member vmap rule (ferjax/models/conv.py).",
    "Sweep: K configurations (different lambda and seed, same batches) in one vmapped step, "
    "against the same K trained one after another with the single-run step; images/s per "
    "configuration. The baseline is the faster sequential conv implementation, so vmapping "
    "is credited only with what it adds.",
    "Inference targets are against the best peer; training targets against PyTorch.",
    "'<conv>+<n>dev': the same step with the host CPU split into n XLA devices "
    "(XLA_FLAGS=--xla_force_host_platform_device_count=n): ferjax's Placement then shards the "
    "batch over them (data parallel; in a sweep, the K runs, or with the 'xla' conv the "
    "batch again). XLA:CPU keeps only about one "
    "core busy on these models with one device; n devices run n streams of work at once.",
]


# ---------------------------------------------------------------- worker side

def worker(module: str, func: str, kwargs: dict, result_path: str) -> None:
    """Runs in the child: one benchmark function, its result and peak RSS to result_path."""
    from benchmarks.common import peak_rss_mb
    out: dict
    code = 0
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as e:
        peer = next((p for p, names in PEER_MODULES.items() if MODULES[p] == module), None)
        if peer and (e.name or "").split(".")[0] in PEER_MODULES[peer]:
            out, code = {"status": "missing", "error": f"{type(e).__name__}: {e}"}, 3
        else:
            out, code = {"status": "error", "error": traceback.format_exc()}, 1
    else:
        try:
            result = getattr(mod, "FUNCTIONS")[func](**kwargs)
            out = {"status": "ok", "result": result}
        except Exception:   # noqa: BLE001 - reported, the suite goes on
            out, code = {"status": "error", "error": traceback.format_exc()}, 1
    out["peak_rss_mb_self"] = peak_rss_mb()
    Path(result_path).write_text(json.dumps(out, default=_jsonable))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # skip TF/XLA teardown


def _jsonable(x):
    try:
        return float(x)
    except Exception:   # noqa: BLE001
        return str(x)


# ---------------------------------------------------------------- parent side

def run_job(framework: str, func: str, kwargs: dict, timeout: float, log=None,
            pythonpath: tuple[str, ...] = (), devices: int | None = None,
            min_time: float = 0.0) -> dict:
    """One worker process; returns its record with the peak RSS the kernel saw (wait4).
    devices: split the host CPU into that many XLA devices (ferjax then shards the batch)."""
    path = [*pythonpath, str(REPO), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(filter(None, path)), FERJAX_BENCH_MIN_TIME=str(min_time))
    if devices:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={devices}").strip()
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="ferjax-bench-") as d:
        result, errlog = Path(d) / "result.json", Path(d) / "log.txt"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", MODULES[framework], func,
               "--kwargs", json.dumps(kwargs), "--result", str(result)]
        t0 = time.perf_counter()
        with open(errlog, "w") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=REPO, env=env)
            state = {"done": False, "timed_out": False}

            def kill():
                if not state["done"]:
                    state["timed_out"] = True
                    os.kill(proc.pid, signal.SIGKILL)

            timer = threading.Timer(timeout, kill)
            timer.start()
            _, status, usage = os.wait4(proc.pid, 0)
            state["done"] = True
            timer.cancel()
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        text = errlog.read_text(errors="replace")
        if result.exists():
            rec = json.loads(result.read_text())
        elif state["timed_out"]:
            rec = {"status": "timeout", "error": f"killed after {timeout:.0f} s"}
        else:
            rec = {"status": "error", "error": f"worker exited with {proc.returncode}"}
    if rec["status"] == "error":
        rec["log_tail"] = text[-3000:]
    rec.update(framework=framework, func=func, kwargs=kwargs, wall_s=wall, load_before=load,
               returncode=proc.returncode, peak_rss_mb=usage.ru_maxrss / 1024.0, devices=devices)
    if log:
        log(rec)
    return rec


class Suite:
    def __init__(self, mode: str, out: Path, profile: str = "missed", only: list[str] | None = None,
                 verbose: bool = True):
        self.mode, self.cfg, self.out, self.profile = mode, MODES[mode], out, profile
        self.workloads = only or self.cfg["workloads"]
        self.verbose = verbose
        self.jobs: list[dict] = []
        self.peers: dict[str, dict] = {}

    # -- running
    def log(self, rec: dict) -> None:
        self.jobs.append(rec)
        if self.out is not None:   # every job as it ends, so a stopped suite leaves its records
            with open(self.out / "jobs.jsonl", "a") as f:
                f.write(json.dumps(rec, default=_jsonable) + "\n")
        if not self.verbose:
            return
        what = rec["framework"] + "." + rec["func"] + " " + " ".join(
            f"{k}={v}" for k, v in rec["kwargs"].items() if k not in ("warmup", "steps")) + (
            f" devices={rec['devices']}" if rec.get("devices") else "")
        res = rec.get("result", {})
        num = next((f"{res[k]:.1f} {k}" for k in ("images_per_s_per_config", "images_per_s", "gflops")
                    if isinstance(res.get(k), (int, float))), "")
        print(f"[{time.strftime('%H:%M:%S')}] {rec['status']:7s} {what[:95]:95s} {num:30s} "
              f"{rec['wall_s']:6.1f}s {rec['peak_rss_mb']:7.0f}MB", flush=True)
        if rec["status"] == "error":
            print("    " + rec["error"].strip().splitlines()[-1][:300], flush=True)

    def job(self, framework: str, func: str, devices: int | None = None, **kwargs) -> dict:
        if framework in self.peers and not self.peers[framework]["available"]:
            return {"status": "missing", "error": self.peers[framework]["error"],
                    "framework": framework, "func": func, "kwargs": kwargs}
        return run_job(framework, func, kwargs, self.cfg["timeout"], self.log, devices=devices,
                       min_time=self.cfg["min_time"])

    def ferjax_variants(self, info: dict, convs: list[str]) -> list[tuple[str, str, int | None]]:
        """(label, conv, devices): every conv on one XLA CPU device, and the default and "xla"
        convs also with the host split into one device per core ("<conv>+<n>dev"), where
        ferjax's Placement shards the batch (data parallel), or the runs of a sweep."""
        out = [(c, c, None) for c in convs]
        n = cores()["usable"] or 1
        if n > 1:
            out += [(f"{c}+{n}dev", c, n) for c in dict.fromkeys([info["default_conv"], "xla"])
                    if c in convs]
        return out

    def steps(self) -> dict:
        return {"warmup": self.cfg["warmup"], "steps": self.cfg["steps"]}

    def batch(self, b: int) -> int:
        cap = self.cfg["batch_cap"]
        return min(b, cap) if cap else b

    def run(self) -> dict:
        started = dt.datetime.now(dt.timezone.utc)
        load_start, busy_start = load_average(), cpu_busy_fraction()
        probe = self.job("ferjax", "probe")
        if probe["status"] != "ok":
            raise SystemExit("ferjax itself does not run:\n" + probe.get("error", "")
                             + probe.get("log_tail", ""))
        info = probe["result"]
        for peer in PEERS:
            rec = self.job(peer, "probe")
            self.peers[peer] = ({"available": True, **rec["result"]} if rec["status"] == "ok" else
                                {"available": False, "status": rec["status"],
                                 "error": rec.get("error", "").strip().splitlines()[-1]})
        ceilings = [self.job("ferjax", "ceiling", n=n) for n in self.cfg["ceiling_n"]]
        torch_ceiling = self.job("torch", "ceiling", n=self.cfg["ceiling_n"][0])

        specs = {name: WORKLOADS[name] for name in self.workloads}
        flops = {}
        for m, f in sorted({(s["model"], s["features"]) for s in specs.values()}):
            rec = self.job("ferjax", "flops", model=m, features=f)
            flops[f"{m}/{f}"] = rec.get("result")

        comparisons = []
        for name, spec in specs.items():
            if spec["task"] == "sweep":
                comparisons.append(self.sweep(name, spec, info, comparisons))
            else:
                comparisons.append(self.compare(name, spec, info, flops))

        layers = {}
        if self.cfg["conv_layers"] and any(WORKLOADS[w]["model"] == "vgg13" for w in self.workloads):
            for conv in info["conv_impls"]:
                if conv == "lax" and "xla" in info["conv_impls"]:
                    continue            # the same convolution as "xla"; only its pooling differs
                rec = self.job("ferjax", "conv_layers", conv=conv, batch=self.batch(64), **self.steps())
                layers[conv] = rec.get("result", {}).get("layers") if rec["status"] == "ok" else None
        pipeline = self.pipeline(comparisons, info)
        ceiling_end = self.job("ferjax", "ceiling", n=self.cfg["ceiling_n"][0])
        ok = [c["result"]["gflops"] for c in ceilings + [ceiling_end] if c["status"] == "ok"]
        ceiling = {"gflops": max(ok) if ok else None,
                   "runs": [{"n": c["kwargs"]["n"], "gflops": c.get("result", {}).get("gflops"),
                             "when": "start"} for c in ceilings]
                   + [{"n": ceiling_end["kwargs"]["n"],
                       "gflops": ceiling_end.get("result", {}).get("gflops"), "when": "end"}],
                   "torch_gflops": torch_ceiling.get("result", {}).get("gflops"),
                   "definition": "float32 n x n matmul through jax.jit(jnp.dot), median of timed runs"}
        for c in comparisons:
            self.add_gflops(c, ceiling["gflops"])
        if self.profile != "none":
            for c in comparisons:
                if self.profile == "all" or c.get("target_met") is False:
                    self.add_profile(c, info)
        finished = dt.datetime.now(dt.timezone.utc)
        return {
            "suite": "ferjax benchmarks", "mode": self.mode, "started": started.isoformat(),
            "finished": finished.isoformat(), "duration_s": (finished - started).total_seconds(),
            "settings": {k: v for k, v in self.cfg.items() if k != "workloads"} | {"workloads": self.workloads},
            "machine": {"cpu": cpu_model(), "cores": cores(), "platform": platform.platform(),
                        "python": platform.python_version(), "load_average_start": load_start,
                        "cpu_busy_before_start": busy_start,
                        "load_average_end": load_average()},
            "versions": {"ferjax": info, **{p: v for p, v in self.peers.items()}},
            "peers": {p: {"available": v["available"], **({} if v["available"] else {"error": v["error"]})}
                      for p, v in self.peers.items()},
            "ceiling": ceiling, "flops": flops, "comparisons": comparisons, "pipeline": pipeline,
            "conv_layers": {"batch": self.batch(64), "by_conv": layers},
            "targets": summarize_targets(comparisons, pipeline), "notes": NOTES, "jobs": self.jobs,
        }

    # -- one workload
    def compare(self, name: str, spec: dict, info: dict, flops: dict) -> dict:
        task, batch = spec["task"], self.batch(spec["batch"])
        base = dict(model=spec["model"], batch=batch, features=spec["features"], **self.steps())
        convs = [c for c in info["conv_impls"] if c not in self.cfg["skip_convs"]
                 or c == info["default_conv"]]
        variants: dict[str, dict] = {"ferjax": {}}
        for label, conv, devices in self.ferjax_variants(info, convs):
            variants["ferjax"][label] = self.job("ferjax", task, conv=conv, devices=devices, **base)
        for peer, options in PEERS.items():
            variants[peer] = {}
            for key, value in options:
                label = {True: "jit", False: "nojit"}.get(value, value)
                variants[peer][label] = self.job(peer, task, **{key: value}, **base)
        entry = {"workload": name, "task": task, "model": spec["model"], "batch": batch,
                 "features": spec["features"], "channels": channels_of(spec["features"]),
                 "ferjax_default_conv": info["default_variant"]}
        entry.update(summarize(variants, default={"ferjax": info["default_variant"]}))
        entry["flops"] = flops.get(f"{spec['model']}/{spec['features']}")
        judge(entry, *TARGETS[task])
        return entry

    def sweep(self, name: str, spec: dict, info: dict, done: list[dict]) -> dict:
        """K configurations vmapped in one step (default conv) against the same K trained one
        after another, with the default conv and, if a single run is faster with another conv
        (from the matching training workload), with that one too; the ratio is taken against
        the faster sequential baseline."""
        batch = self.batch(spec["batch"])
        base = dict(model=spec["model"], batch=batch, features=spec["features"], **self.steps())
        default = info["default_variant"]
        seq_convs = [info["default_conv"]]
        for c in done:
            if (c["task"], c["model"], c["batch"], c["features"]) == ("train", spec["model"], batch,
                                                                      spec["features"]):
                best = parse_variant(c.get("best_variant", {}).get("ferjax") or default)[0]
                if best not in seq_convs:
                    seq_convs.append(best)
        per_k = []
        variants = self.ferjax_variants(info, seq_convs)
        for k in spec["ks"]:
            vm = {label: self.job("ferjax", "train", k=k, conv=conv, devices=devices, **base)
                  for label, conv, devices in variants}
            seq = {label: self.job("ferjax", "sequential", k=k, conv=conv, devices=devices, **base)
                   for label, conv, devices in variants}
            vm_rates = {conv: _get(r, "images_per_s_per_config") for conv, r in vm.items()}
            seq_rates = {conv: _get(r, "images_per_s_per_config") for conv, r in seq.items()}
            ok = {conv: x for conv, x in seq_rates.items() if x}
            best_seq = max(ok, key=ok.get) if ok else default
            ok_vm = {conv: x for conv, x in vm_rates.items() if x}
            best_vm = max(ok_vm, key=ok_vm.get) if ok_vm else default
            row = {"k": k, "vmapped_per_config": vm_rates.get(default), "vmapped_conv": default,
                   "sequential_per_config": ok.get(best_seq), "sequential_conv": best_seq,
                   "vmapped_per_config_by_conv": vm_rates,
                   "sequential_per_config_by_conv": seq_rates,
                   "best_vmapped_conv": best_vm,
                   "peak_rss_mb": {"vmapped": vm[default].get("peak_rss_mb"),
                                   "sequential": seq[best_seq].get("peak_rss_mb"),
                                   "vmapped_by_conv": {c: r.get("peak_rss_mb") for c, r in vm.items()}},
                   "status": {**{f"vmapped/{c}": r["status"] for c, r in vm.items()},
                              **{f"sequential/{c}": r["status"] for c, r in seq.items()}}}
            row["ratio"] = _ratio(row["vmapped_per_config"], row["sequential_per_config"])
            row["ratio_same_conv"] = _ratio(row["vmapped_per_config"], seq_rates.get(default))
            row["ratio_best_vmapped"] = _ratio(ok_vm.get(best_vm), row["sequential_per_config"])
            per_k.append(row)
        last = per_k[-1]
        entry = {"workload": name, "task": "sweep", "model": spec["model"], "batch": batch,
                 "features": spec["features"], "channels": channels_of(spec["features"]),
                 "conv": default, "ks": list(spec["ks"]), "per_k": per_k,
                 "images_per_s": {"ferjax": last["vmapped_per_config"],
                                  "sequential": last["sequential_per_config"]},
                 "unit": "images/s per configuration",
                 "best_peer": "sequential", "ratio_vs_best_peer": last["ratio"],
                 "peak_rss_mb": {"ferjax": last["peak_rss_mb"]["vmapped"],
                                 "sequential": last["peak_rss_mb"]["sequential"]}}
        judge(entry, *TARGETS["sweep"])
        entry["target_met_all_k"] = all(r["ratio"] is not None and r["ratio"] >= TARGETS["sweep"][1]
                                        for r in per_k)
        return entry

    def pipeline(self, comparisons: list[dict], info: dict) -> dict:
        """The O-S-L tf.data pipeline against the fastest consumer: its standalone rate vs the
        fastest ferjax O-S-L training step (any conv), and the light step fed by it."""
        n, b = self.cfg["pipeline_images"], self.batch(64)
        rates = {fs: self.job("ferjax", "pipeline", feature_set=fs, n_images=n, batch=b)
                 for fs in ("O", "O-S-L")}
        consumers = {}
        conv, devices = parse_variant(info["default_variant"])
        for c in comparisons:   # the fastest light variant feeds the fed step (O-S-L's if measured)
            if c["task"] == "train" and c["model"] == "light" and c.get("best_variant", {}).get("ferjax"):
                conv, devices = parse_variant(c["best_variant"]["ferjax"])
        for c in comparisons:
            if c["task"] == "train" and c["features"] == "O-S-L":
                ok = {v: x for v, x in c["variant_images_per_s"].get("ferjax", {}).items() if x}
                if ok:
                    best = max(ok, key=ok.get)
                    consumers[c["workload"]] = {"images_per_s": ok[best], "conv": best}
                    if c["model"] == "light":
                        conv, devices = parse_variant(best)
        fed = self.job("ferjax", "pipeline_fed", model="light", batch=b, features="O-S-L", conv=conv,
                       devices=devices, n_images=self.cfg["fed_images"], warmup=self.cfg["warmup"])
        keys = ("images_per_s", "resident_images_per_s", "data_wait_fraction", "data_wait_s",
                "dispatch_s", "backlog_s", "resident_step_s", "wall_s", "pipeline_bound")
        out = {"train_images_per_s": {fs: _get(r, "images_per_s") for fs, r in rates.items()},
               "train_images_per_cpu_s": {fs: _get(r, "images_per_cpu_s") for fs, r in rates.items()},
               "batch": b, "n_images": n, "step_consumption_images_per_s": consumers,
               "fed": {"workload": f"light, O-S-L, batch {b}, {conv} conv"
                               + (f", {devices} XLA devices" if devices else ""),
                       **{k: _get(fed, k) for k in keys},
                       "peak_rss_mb": fed.get("peak_rss_mb"), "status": fed["status"]}}
        if fed["status"] == "ok":
            consumers["fed step, resident batch"] = {
                "images_per_s": fed["result"]["resident_images_per_s"],
                "conv": conv + (f"+{devices}dev" if devices else "")}
        osl = out["train_images_per_s"]["O-S-L"]
        fastest = max([v["images_per_s"] for v in consumers.values()], default=None)
        out["fastest_consumer_images_per_s"] = fastest
        out["faster_than_fastest_step"] = (osl > fastest) if (osl and fastest) else None
        verdicts = [v for v in (out["faster_than_fastest_step"],
                                None if fed["status"] != "ok" else not out["fed"]["pipeline_bound"])
                    if v is not None]
        out["target_met"] = all(verdicts) if verdicts else None
        return out

    def add_gflops(self, c: dict, ceiling: float | None) -> None:
        if c["task"] != "train" or not c.get("flops"):
            return
        per_image = c["flops"]["train_flops_per_image"]
        c["achieved_gflops"] = {fw: (r * per_image / 1e9 if r else None)
                                for fw, r in c["images_per_s"].items()}
        c["achieved_gflops_variants"] = {
            fw: {v: (r * per_image / 1e9 if r else None) for v, r in rows.items()}
            for fw, rows in c["variant_images_per_s"].items()}
        if ceiling:
            c["fraction_of_ceiling"] = {fw: (g / ceiling if g else None)
                                        for fw, g in c["achieved_gflops"].items()}

    def add_profile(self, c: dict, info: dict) -> None:
        n = self.cfg["profile_steps"]
        base = dict(model=c["model"], batch=c["batch"], features=c["features"], **self.steps())
        if c["task"] == "sweep":
            rec = self.job("ferjax", "train", k=c["ks"][-1], profile_steps=n, **base)
            c["profile"] = {"what": f"vmapped K={c['ks'][-1]} step", **_profile_of(rec)}
            return
        c["profile"] = {}
        convs = {info["default_variant"], c.get("best_variant", {}).get("ferjax") or info["default_variant"]}
        for label in sorted(convs):
            conv, devices = parse_variant(label)
            rec = self.job("ferjax", c["task"], conv=conv, devices=devices, profile_steps=n, **base)
            c["profile"][label] = _profile_of(rec)


def parse_variant(label: str) -> tuple[str, int | None]:
    """'xla+2dev' -> ('xla', 2); 'matmul' -> ('matmul', None)."""
    conv, _, dev = label.partition("+")
    return conv, (int(dev[:-3]) if dev.endswith("dev") else None)


def _profile_of(rec: dict) -> dict:
    if rec["status"] != "ok":
        return {"status": rec["status"], "error": rec.get("error", "")[-500:]}
    return rec["result"].get("profile", {})


def _get(rec: dict, key: str):
    return rec.get("result", {}).get(key) if rec.get("status") == "ok" else None


def _ratio(a, b):
    return a / b if (a and b) else None


def summarize(variants: dict[str, dict[str, dict]], default: dict[str, str]) -> dict:
    """Per framework: every variant's images/s, the kept one, peak RSS, missing/failed peers."""
    rates, best, images, rss, missing, errors = {}, {}, {}, {}, {}, {}
    for fw, recs in variants.items():
        rates[fw] = {v: _get(r, "images_per_s") for v, r in recs.items()}
        rss[fw] = {v: r.get("peak_rss_mb") for v, r in recs.items() if r["status"] == "ok"}
        for v, r in recs.items():
            if r["status"] == "missing":
                missing[fw] = r.get("error", "").strip().splitlines()[-1] if r.get("error") else "missing"
            elif r["status"] != "ok":
                errors[f"{fw}/{v}"] = (r.get("error", "") or "").strip().splitlines()[-1:] or [r["status"]]
        ok = {v: x for v, x in rates[fw].items() if x}
        if not ok:
            continue
        best[fw] = max(ok, key=ok.get)
        kept = default.get(fw, best[fw])
        images[fw] = ok.get(kept)
    peers = {fw: x for fw, x in images.items() if fw != "ferjax" and x}
    best_peer = max(peers, key=peers.get) if peers else None
    ferjax_best = max((x for x in rates.get("ferjax", {}).values() if x), default=None)
    return {"images_per_s": images, "variant_images_per_s": rates, "best_variant": best,
            "best_peer": best_peer,
            "ratio_vs_best_peer": _ratio(images.get("ferjax"), peers.get(best_peer)),
            "ratio_vs_torch": _ratio(images.get("ferjax"), peers.get("torch")),
            "ferjax_best_variant_ratio_vs_best_peer": _ratio(ferjax_best, peers.get(best_peer)),
            "peak_rss_mb": rss, "missing_peers": missing, "errors": errors}


def judge(entry: dict, against: str, minimum: float) -> None:
    key = {"torch": "ratio_vs_torch"}.get(against, "ratio_vs_best_peer")
    ratio = entry.get(key)
    entry["target"] = {"ratio": key, "against": against, "min": minimum}
    entry["target_met"] = None if ratio is None else bool(ratio >= minimum)


def summarize_targets(comparisons: list[dict], pipeline: dict) -> list[dict]:
    rows = [{"workload": c["workload"], "against": c["target"]["against"], "min": c["target"]["min"],
             "ratio": c.get(c["target"]["ratio"]), "met": c["target_met"]} for c in comparisons]
    rows.append({"workload": "pipeline (O-S-L)", "against": "fastest O-S-L step; not pipeline-bound",
                 "min": 1.0, "ratio": _ratio(pipeline["train_images_per_s"].get("O-S-L"),
                                             pipeline.get("fastest_consumer_images_per_s")),
                 "met": pipeline["target_met"]})
    return rows


# ---------------------------------------------------------------- report

def _f(x, fmt="{:.1f}", none="–"):
    return none if x is None else fmt.format(x)


def markdown(r: dict) -> str:
    m, L = r["machine"], []
    L.append(f"# ferjax benchmarks ({r['mode']})\n")
    L.append(f"{r['started'][:19]}Z, {r['duration_s'] / 60:.1f} min. CPU: {m['cpu']}, "
             f"{m['cores']['usable']} usable cores; load average at start "
             f"{m['load_average_start']}, at end {m['load_average_end']}.")
    busy = m.get("cpu_busy_before_start")
    if busy is not None and busy > 0.1:
        L.append(f"\n**Warning: the machine was busy when the suite started ({busy:.0%} of its CPU "
                 f"time in use by other processes): the rates below are lower than on an idle "
                 f"machine and the ratios are noisy.**")
    elif busy is not None:
        L.append(f"\nCPU in use by other processes just before the start: {busy:.0%}.")
    if r["mode"] == "smoke":
        L.append("\n**Smoke run (one step, batches capped at 8): checks that every path runs; "
                 "the numbers mean nothing.**")
    v = r["versions"]
    vers = [f"jax {v['ferjax']['jax']}", f"flax {v['ferjax']['flax']}"]
    for p in ("torch", "keras"):
        vers.append(f"{p} {v[p].get(p)}" if v[p]["available"] else f"{p}: MISSING ({v[p]['error']})")
    if v["keras"]["available"]:
        vers.append(f"tensorflow {v['keras'].get('tensorflow')}")
    L.append("\nVersions: " + ", ".join(vers) + ".")
    for p, info in r["peers"].items():
        if not info["available"]:
            L.append(f"\n**Peer {p} is missing** ({info['error']}): its columns are empty and the "
                     f"ratios are taken against the peers that ran.")
    c = r["ceiling"]
    runs = ", ".join("n={} {}: {}".format(x["n"], x["when"], _f(x["gflops"])) for x in c["runs"])
    L.append(f"\nMatmul ceiling (float32 through jax): **{_f(c['gflops'])} GFLOP/s** ({runs}); "
             f"PyTorch torch.mm: {_f(c['torch_gflops'])} GFLOP/s.")

    L.append("\n## Targets\n")
    L.append("| workload | ratio of ferjax to | target | measured | met |")
    L.append("|---|---|---|---|---|")
    for t in r["targets"]:
        L.append(f"| {t['workload']} | {t['against']} | {_f(t['min'], '>= {:.1f}x', '')} | "
                 f"{_f(t['ratio'], '{:.2f}x')} | {_met(t['met'])} |")

    L.append("\n## Training and inference (images/s)\n")
    L.append("ferjax = its default (`" + r["versions"]["ferjax"].get("default_variant", r["versions"]["ferjax"]["default_conv"]) + "`, what `ferjax train` runs); peers: "
             "their faster variant (in brackets). GFLOP/s from the stated FLOP count.\n")
    L.append("| workload | ferjax | PyTorch | Keras | ratio vs best peer | vs PyTorch | "
             "ferjax GFLOP/s (% ceiling) | PyTorch GFLOP/s | peak RSS ferjax / torch / keras (MB) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for e in r["comparisons"]:
        if e["task"] == "sweep":
            continue
        ips, best = e["images_per_s"], e["best_variant"]
        g, frac = e.get("achieved_gflops", {}), e.get("fraction_of_ceiling", {})
        rss = e["peak_rss_mb"]

        def peer(p):
            if p in e["missing_peers"]:
                return "missing"
            return f"{_f(ips.get(p))} ({best.get(p, '–')})"

        def rss_of(fw):
            rows = rss.get(fw, {})
            return _f(max(rows.values()) if rows else None, "{:.0f}")
        L.append(f"| {e['workload']} | {_f(ips.get('ferjax'))} | {peer('torch')} | {peer('keras')} | "
                 f"{_f(e['ratio_vs_best_peer'], '{:.2f}x')} | {_f(e['ratio_vs_torch'], '{:.2f}x')} | "
                 f"{_f(g.get('ferjax'))} ({_f(frac.get('ferjax'), '{:.0%}')}) | {_f(g.get('torch'))} | "
                 f"{rss_of('ferjax')} / {rss_of('torch')} / {rss_of('keras')} |")

    L.append("\n### Every variant (images/s)\n")
    L.append("| workload | " + " | ".join(_variant_columns(r)) + " |")
    L.append("|---|" + "---|" * len(_variant_columns(r)))
    for e in r["comparisons"]:
        if e["task"] == "sweep":
            continue
        cells = [_f(e["variant_images_per_s"].get(fw, {}).get(v)) for fw, v in
                 (col.split("/", 1) for col in _variant_columns(r))]
        L.append(f"| {e['workload']} | " + " | ".join(cells) + " |")
    errs = {e["workload"]: e["errors"] for e in r["comparisons"] if e.get("errors")}
    if errs:
        L.append("\nFailed variants: " + "; ".join(f"{w}: {k} ({' '.join(v)[:200]})"
                                                   for w, d in errs.items() for k, v in d.items()))

    for e in r["comparisons"]:
        if e["task"] != "sweep":
            continue
        L.append(f"\n## Sweep: {e['workload']} ({e['model']}, batch {e['batch']}, {e['conv']} conv)\n")
        L.append("Images/s per configuration (what each of the K configurations gets over the whole "
                 "sweep): K configurations vmapped in one step (batch / step time) vs the same K trained "
                 "one after another (steps x batch / total time of the K runs). The ratio is the "
                 "speed-up of the whole sweep.\n")
        convs = list(e["per_k"][0].get("vmapped_per_config_by_conv", {})) or [e["conv"]]
        L.append("| K | " + " | ".join(f"vmapped {c}" for c in convs) + " | "
                 + " | ".join(f"sequential {c}" for c in convs)
                 + f" | ratio ({e['conv']} vmapped / faster sequential) | ratio (faster vmapped / "
                 "faster sequential) | peak RSS vmapped / sequential (MB) |")
        L.append("|---|" + "---|" * (2 * len(convs) + 3))
        for row in e["per_k"]:
            vm = row.get("vmapped_per_config_by_conv", {})
            sq = row.get("sequential_per_config_by_conv", {})
            L.append(f"| {row['k']} | " + " | ".join(_f(vm.get(c)) for c in convs) + " | "
                     + " | ".join(_f(sq.get(c)) for c in convs) + " | "
                     f"{_f(row['ratio'], '{:.2f}x')} | {_f(row.get('ratio_best_vmapped'), '{:.2f}x')} "
                     f"({row.get('best_vmapped_conv', '–')}) | "
                     f"{_f(row['peak_rss_mb']['vmapped'], '{:.0f}')} / "
                     f"{_f(row['peak_rss_mb']['sequential'], '{:.0f}')} |")

    p = r["pipeline"]
    L.append("\n## Input pipeline\n")
    L.append(f"tf.data training pipeline alone ({p['n_images']} random images, batch {p['batch']}): "
             + ", ".join(f"{fs} {_f(x, '{:.0f}')} images/s ({_f(p['train_images_per_cpu_s'][fs], '{:.0f}')}"
                         f" per CPU-s)" for fs, x in p["train_images_per_s"].items()) + ".")
    L.append("Fastest ferjax training step per O-S-L workload (resident batch): "
             + (", ".join(f"{w} {_f(x['images_per_s'], '{:.0f}')} ({x['conv']})"
                          for w, x in p["step_consumption_images_per_s"].items()) or "–") + " images/s.")
    fed = p["fed"]
    L.append(f"\nStep fed by the pipeline ({fed['workload']}), as the training loop runs it: "
             f"{_f(fed['images_per_s'], '{:.0f}')} images/s (same step on a resident batch: "
             f"{_f(fed['resident_images_per_s'], '{:.0f}')}). Of {_f(fed['wall_s'])} s the loop spent "
             f"{_f(fed['data_wait_s'])} s waiting for batches and {_f(fed['dispatch_s'])} s blocked "
             f"dispatching steps; {_f(fed['backlog_s'], '{:.2f}')} s of queued steps remained after the "
             f"last batch (one resident step: {_f(fed['resident_step_s'], '{:.3f}')} s). "
             f"Pipeline-bound: {_yn(fed['pipeline_bound'])}.")
    L.append(f"\n**Pipeline never the bottleneck: {_met(p['target_met'])}** (O-S-L pipeline alone "
             f"{_f(p['train_images_per_s']['O-S-L'], '{:.0f}')} images/s vs the fastest O-S-L step "
             f"{_f(p['fastest_consumer_images_per_s'], '{:.0f}')} images/s; the fed step is "
             f"{'not ' if fed['pipeline_bound'] is False else ''}pipeline-bound). On a 2-core machine "
             f"the pipeline's own CPU time slows a fed step even when the step never waits for data.")

    prof = [e for e in r["comparisons"] if e.get("profile")]
    if prof:
        L.append("\n## What bounds the missed targets (ferjax per-op profile)\n")
        L.append("Top ops of the compiled step by time (jax.profiler trace of XLA's compute "
                 "threads; times are summed over threads, so they can exceed the wall step).")
        for e in prof:
            profiles = e["profile"]
            if "top_ops" in profiles or "what" in profiles:
                profiles = {profiles.get("what", "step"): profiles}
            for conv, pr in profiles.items():
                L.append(f"\n**{e['workload']}** ({conv}): busy {_f(pr.get('busy_ms_per_step'))} ms/step"
                         + (f"; {pr['error'][:200]}" if pr.get("error") else ""))
                if pr.get("top_ops"):
                    L.append("\n| op | output | from (JAX op) | ms/step | share |\n|---|---|---|---|---|")
                    for o in pr["top_ops"][:12]:
                        L.append(f"| `{o['op'][:40]}` | `{o.get('shape', '')[:40]}` | "
                                 f"`{o.get('source', '')[-80:]}` | {o['ms_per_step']:.1f} | {o['share']:.0%} |")
    cl = r.get("conv_layers", {}).get("by_conv") or {}
    if any(cl.values()):
        convs = [c for c, rows in cl.items() if rows]
        L.append(f"\n## VGG13's convolutions one by one (batch {r['conv_layers']['batch']}, GFLOP/s)\n")
        L.append("Forward, and forward + input gradient + weight gradient (the first layer: weight "
                 "gradient only), per ferjax conv implementation; compare with the ceiling above.\n")
        L.append("| layer | " + " | ".join(f"{c} fwd | {c} train" for c in convs) + " |")
        L.append("|---|" + "---|---|" * len(convs))
        for i, row in enumerate(cl[convs[0]]):
            cells = []
            for c in convs:
                x = cl[c][i]
                cells += [f"{x['forward_gflops']:.0f}", f"{x['train_gflops']:.0f} ({x['train_ms']:.0f} ms)"]
            L.append(f"| {row['side']}x{row['side']} {row['cin']}->{row['cout']} | " + " | ".join(cells) + " |")
    L.append("\n## Stated FLOP counts (per image)\n")
    L.append("| model / features | forward GFLOP | training GFLOP (3x) |\n|---|---|---|")
    for k, f in r["flops"].items():
        if f:
            L.append(f"| {k} | {f['forward_flops_per_image'] / 1e9:.3f} | {f['train_flops_per_image'] / 1e9:.3f} |")
    L.append("\n## Notes\n")
    L += [f"* {n}" for n in r["notes"]]
    return "\n".join(L) + "\n"


def _met(x):
    return {True: "yes", False: "**NO**", None: "not measured"}[x]


def _yn(x):
    return {True: "yes", False: "no", None: "unknown"}[x]


def _variant_columns(r: dict) -> list[str]:
    cols = []
    for e in r["comparisons"]:
        for fw, rows in e.get("variant_images_per_s", {}).items():
            for v in rows:
                if f"{fw}/{v}" not in cols:
                    cols.append(f"{fw}/{v}")
    return cols


# ---------------------------------------------------------------- entry point

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, help="directory for results.json and results.md")
    parser.add_argument("--quick", action="store_true", help="fewer workloads and steps")
    parser.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", nargs="+", choices=sorted(WORKLOADS), help="just these workloads")
    parser.add_argument("--profile", choices=("missed", "all", "none"), default="missed",
                        help="per-op profile of ferjax for workloads that miss their target (default)")
    parser.add_argument("--worker", nargs=2, metavar=("MODULE", "FUNC"), help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker[0], args.worker[1], json.loads(args.kwargs), args.result)
    if not args.out:
        parser.error("--out is required")
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "jobs.jsonl").unlink(missing_ok=True)
    print(f"ferjax benchmark suite, {mode} mode -> {args.out}; load average {load_average()}",
          flush=True)
    results = Suite(mode, args.out, profile=args.profile, only=args.only).run()
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=_jsonable))
    (args.out / "results.md").write_text(markdown(results))
    print(f"\nwrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    for t in results["targets"]:
        print(f"  {t['workload']:22s} vs {t['against']:28s} {_f(t['ratio'], '{:.2f}x'):>7s}  "
              f"target {_f(t['min'], '{:.1f}x', '-'):>6s}  {_met(t['met'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
