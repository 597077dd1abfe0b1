"""The suite's measurements: which jobs run for each workload, gathered into one results dict."""
from __future__ import annotations

import datetime as dt
import json
import platform
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from benchmarks.common import cores, cpu_busy_fraction, cpu_model, load_average
from benchmarks.comparison import Comparison
from benchmarks.jobs import jsonable, run_job
from benchmarks.plan import MODES, NOTES, PEERS, TARGETS, WORKLOADS
from benchmarks.summary import (judge, summarize, summarize_ceiling, summarize_loop, summarize_pipeline,
                                summarize_targets, sweep_row, with_gflops)
from ferjax.features import num_channels


def parse_variant(label: str) -> tuple[str, int | None]:
    """'xla+2dev' -> ('xla', 2); 'matmul' -> ('matmul', None)."""
    conv, _, dev = label.partition("+")
    return conv, (int(dev[:-3]) if dev.endswith("dev") else None)


def rotate(items: list, r: int) -> list:
    """items grouped by their first element, the groups in turn first: round r starts with
    the (r mod groups)-th system."""
    order = list(dict.fromkeys(x[0] for x in items))
    first = order[r % len(order):] + order[:r % len(order)]
    return [x for fw in first for x in items if x[0] == fw]


def _profile_of(rec: dict) -> dict:
    if rec["status"] != "ok":
        return {"status": rec["status"], "error": rec.get("error", "")[-500:]}
    return rec["result"].get("profile", {})


class Suite:
    def __init__(self, mode: str, out: Path, profile: str = "missed", only: list[str] | None = None,
                 verbose: bool = True, rounds: int | None = None):
        self.mode, self.cfg, self.out, self.profile = mode, MODES[mode], out, profile
        self.rounds = rounds or self.cfg["rounds"]
        self.workloads = only or self.cfg["workloads"]
        self.verbose = verbose
        self.jobs: list[dict] = []
        self.peers: dict[str, dict] = {}

    # -- running
    def log(self, rec: dict) -> None:
        self.jobs.append(rec)
        if self.out is not None:   # every job as it ends, so a stopped suite leaves its records
            with open(self.out / "jobs.jsonl", "a") as f:
                f.write(json.dumps(rec, default=jsonable) + "\n")
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

        comparisons: list[Comparison] = []
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
        loop = self.loop(info)
        ceiling_end = self.job("ferjax", "ceiling", n=self.cfg["ceiling_n"][0])
        ceiling = summarize_ceiling(ceilings, ceiling_end, torch_ceiling)
        comparisons = [with_gflops(c, ceiling["gflops"]) for c in comparisons]
        if self.profile != "none":
            comparisons = [self.add_profile(c, info)
                           if self.profile == "all" or c.target_met is False else c
                           for c in comparisons]
        finished = dt.datetime.now(dt.timezone.utc)
        return {
            "suite": "ferjax benchmarks", "mode": self.mode, "started": started.isoformat(),
            "finished": finished.isoformat(), "duration_s": (finished - started).total_seconds(),
            "settings": {k: v for k, v in self.cfg.items() if k != "workloads"}
            | {"workloads": self.workloads, "rounds": self.rounds},
            "machine": {"cpu": cpu_model(), "cores": cores(), "platform": platform.platform(),
                        "python": platform.python_version(), "load_average_start": load_start,
                        "cpu_busy_before_start": busy_start,
                        "load_average_end": load_average()},
            "versions": {"ferjax": info, **{p: v for p, v in self.peers.items()}},
            "peers": {p: {"available": v["available"], **({} if v["available"] else {"error": v["error"]})}
                      for p, v in self.peers.items()},
            "ceiling": ceiling, "flops": flops, "comparisons": [c.to_json() for c in comparisons],
            "pipeline": pipeline, "conv_layers": {"batch": self.batch(64), "by_conv": layers},
            "loop": loop,
            "targets": summarize_targets(comparisons, pipeline, loop), "notes": NOTES, "jobs": self.jobs,
        }

    # -- one workload
    def compare(self, name: str, spec: dict, info: dict, flops: dict) -> Comparison:
        task, batch = spec["task"], self.batch(spec["batch"])
        base = dict(model=spec["model"], batch=batch, features=spec["features"], **self.steps())
        convs = [c for c in info["conv_impls"] if c not in self.cfg["skip_convs"]
                 or c == info["default_conv"]]
        default = info["default_variant"]
        ferjax_variants = self.ferjax_variants(info, convs)
        peer_variants = [(peer, {True: "jit", False: "nojit"}.get(value, value), {key: value})
                         for peer, options in PEERS.items() for key, value in options]
        variants: dict[str, dict[str, list[dict]]] = {fw: defaultdict(list) for fw in ["ferjax", *PEERS]}
        for r in range(self.rounds):
            # every round: ferjax's default and every peer variant, the systems taking turns
            # to go first; the first round also runs ferjax's other variants
            jobs = [("ferjax", label, dict(conv=conv, devices=devices))
                    for label, conv, devices in ferjax_variants if r == 0 or label == default]
            jobs += [(peer, label, option) for peer, label, option in peer_variants]
            for fw, label, kwargs in rotate(jobs, r):
                variants[fw][label].append(self.job(fw, task, **kwargs, **base))
        entry = Comparison(workload=name, task=task, model=spec["model"], batch=batch,
                           features=spec["features"], channels=num_channels(spec["features"]),
                           ferjax_default_conv=info["default_variant"],
                           flops=flops.get(f"{spec['model']}/{spec['features']}"),
                           **summarize({fw: dict(v) for fw, v in variants.items()},
                                       default={"ferjax": default}))
        return judge(entry, *TARGETS[task])

    def sweep(self, name: str, spec: dict, info: dict, done: list[Comparison]) -> Comparison:
        """K configurations stepped as a group (default conv) against the same K trained one
        after another, with the default conv and, if a single run is faster with another conv
        (from the matching training workload), with that one too; the ratio is taken against
        the faster sequential baseline."""
        batch = self.batch(spec["batch"])
        base = dict(model=spec["model"], batch=batch, features=spec["features"], **self.steps())
        default = info["default_variant"]
        seq_convs = [info["default_conv"]]
        for c in done:
            if (c.task, c.model, c.batch, c.features) == ("train", spec["model"], batch, spec["features"]):
                best = parse_variant((c.best_variant or {}).get("ferjax") or default)[0]
                if best not in seq_convs:
                    seq_convs.append(best)
        per_k = []
        variants = self.ferjax_variants(info, seq_convs)
        for k in spec["ks"]:
            vm, seq = defaultdict(list), defaultdict(list)
            # the target's K (the last) in every round: the default group and each sequential
            for r in range(self.rounds if k == spec["ks"][-1] else 1):
                for label, conv, devices in variants:
                    if r == 0 or label == default:
                        vm[label].append(self.job("ferjax", "train", k=k, conv=conv, devices=devices,
                                                  **base))
                for label, conv, devices in variants:
                    seq[label].append(self.job("ferjax", "sequential", k=k, conv=conv,
                                               devices=devices, **base))
            per_k.append(sweep_row(k, vm, seq, default))
        last = per_k[-1]
        entry = Comparison(workload=name, task="sweep", model=spec["model"], batch=batch,
                           features=spec["features"], channels=num_channels(spec["features"]),
                           conv=default, ks=list(spec["ks"]), per_k=per_k,
                           images_per_s={"ferjax": last["vmapped_per_config"],
                                         "sequential": last["sequential_per_config"]},
                           unit="images/s per configuration", rounds=last["rounds"],
                           images_per_s_spread={"ferjax": last["vmapped_per_config_spread"],
                                                "sequential": last["sequential_per_config_spread"]},
                           best_peer="sequential", ratio_vs_best_peer=last["ratio"],
                           ratio_vs_best_peer_spread=last["ratio_spread"],
                           peak_rss_mb={"ferjax": last["peak_rss_mb"]["vmapped"],
                                        "sequential": last["peak_rss_mb"]["sequential"]})
        return judge(entry, *TARGETS["sweep"])

    def pipeline(self, comparisons: list[Comparison], info: dict) -> dict:
        """The O-S-L tf.data pipeline against the fastest consumer: its standalone rate vs the
        fastest ferjax O-S-L training step (any conv), and the light step fed by it."""
        n, b = self.cfg["pipeline_images"], self.batch(64)
        rates = {fs: self.job("ferjax", "pipeline", feature_set=fs, n_images=n, batch=b)
                 for fs in ("O", "O-S-L")}
        consumers = {}
        conv, devices = parse_variant(info["default_variant"])
        for c in comparisons:   # the fastest light variant feeds the fed step (O-S-L's if measured)
            if c.task == "train" and c.model == "light" and (c.best_variant or {}).get("ferjax"):
                conv, devices = parse_variant(c.best_variant["ferjax"])
        for c in comparisons:
            if c.task == "train" and c.features == "O-S-L":
                ok = {v: x for v, x in c.variant_images_per_s.get("ferjax", {}).items() if x}
                if ok:
                    best = max(ok, key=ok.get)
                    consumers[c.workload] = {"images_per_s": ok[best], "conv": best}
                    if c.model == "light":
                        conv, devices = parse_variant(best)
        fed = self.job("ferjax", "pipeline_fed", model="light", batch=b, features="O-S-L", conv=conv,
                       devices=devices, n_images=self.cfg["fed_images"], warmup=self.cfg["warmup"])
        return summarize_pipeline(
            rates, fed, consumers, batch=b, n_images=n,
            fed_workload=f"light, O-S-L, batch {b}, {conv} conv"
            + (f", {devices} XLA devices" if devices else ""),
            fed_variant=conv + (f"+{devices}dev" if devices else ""))

    def loop(self, info: dict) -> dict:
        """The production training loop (light model, the fast profile, ferjax's default variant)
        on the built-in faces, against its own step alone and the bare step."""
        conv, devices = parse_variant(info["default_variant"])
        rec = self.job("ferjax", "loop", model="light", batch=self.batch(64), conv=conv, devices=devices,
                       per_class=self.cfg["loop_per_class"], warmup=self.cfg["warmup"])
        return summarize_loop(rec, info["default_variant"])

    def add_profile(self, c: Comparison, info: dict) -> Comparison:
        n = self.cfg["profile_steps"]
        base = dict(model=c.model, batch=c.batch, features=c.features, **self.steps())
        if c.task == "sweep":
            rec = self.job("ferjax", "train", k=c.ks[-1], profile_steps=n, **base)
            return replace(c, profile={"what": f"group of K={c.ks[-1]}, its first piece's step",
                                       **_profile_of(rec)})
        profile = {}
        convs = {info["default_variant"], (c.best_variant or {}).get("ferjax") or info["default_variant"]}
        for label in sorted(convs):
            conv, devices = parse_variant(label)
            rec = self.job("ferjax", c.task, conv=conv, devices=devices, profile_steps=n, **base)
            profile[label] = _profile_of(rec)
        return replace(c, profile=profile)
