"""From job records to the suite's numbers: kept rates, ratios, targets met or missed."""
from __future__ import annotations

import statistics
from dataclasses import replace

from benchmarks.comparison import Comparison, Target
from benchmarks.plan import LOOP_TARGET


def result_of(rec: dict, key: str):
    return rec.get("result", {}).get(key) if rec.get("status") == "ok" else None


def ratio(a, b):
    return a / b if (a and b) else None


def rates_of(recs: list[dict], key: str = "images_per_s") -> list:
    """One rate per round (None where that round's measurement failed)."""
    return [result_of(r, key) for r in recs]


def median(values) -> float | None:
    """Of the rates measured (None and 0: a failed or missing measurement, left out)."""
    ok = [x for x in values if x]
    return statistics.median(ok) if ok else None


def spread(values) -> list[float] | None:
    ok = [x for x in values if x]
    return [min(ok), max(ok)] if ok else None


def paired_ratios(a: list[dict], b: list[dict], key: str = "images_per_s") -> list[float]:
    """Round by round, a's rate over b's: both measured minutes apart, so a drift of the
    machine's speed moves both (rounds either failed are left out)."""
    return [x for x in map(ratio, rates_of(a, key), rates_of(b, key)) if x]


def summarize(variants: dict[str, dict[str, list[dict]]], default: dict[str, str]) -> dict:
    """Per framework: every variant's images/s (the median of its rounds), the kept one and its
    spread, peak RSS, missing/failed peers (Comparison's fields of a ferjax-vs-peers workload).
    A ratio is the median of the per-round ratios of the kept variants, its spread beside it."""
    rates, best, images, rss, missing, errors, kept_recs = {}, {}, {}, {}, {}, {}, {}
    for fw, by_variant in variants.items():
        rates[fw] = {v: median(rates_of(recs)) for v, recs in by_variant.items()}
        rss[fw] = {v: _peak(ok) for v, recs in by_variant.items()
                   if (ok := [r for r in recs if r["status"] == "ok"])}
        for v, recs in by_variant.items():
            for r in recs:
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
        kept_recs[fw] = by_variant.get(kept, [])
    peers = {fw: x for fw, x in images.items() if fw != "ferjax" and x}
    best_peer = max(peers, key=peers.get) if peers else None
    ferjax_best = max((x for x in rates.get("ferjax", {}).values() if x), default=None)
    against = {p: paired_ratios(kept_recs.get("ferjax", []), kept_recs[p]) for p in peers}
    return {"images_per_s": images, "variant_images_per_s": rates, "best_variant": best,
            "rounds": max((len(recs) for recs in kept_recs.values()), default=0),
            "images_per_s_spread": {fw: spread(rates_of(recs)) for fw, recs in kept_recs.items()},
            "best_peer": best_peer,
            "ratio_vs_best_peer": median(against.get(best_peer, []))
            or ratio(images.get("ferjax"), peers.get(best_peer)),
            "ratio_vs_best_peer_spread": spread(against.get(best_peer, [])),
            "ratio_vs_torch": median(against.get("torch", [])) or ratio(images.get("ferjax"), peers.get("torch")),
            "ratio_vs_torch_spread": spread(against.get("torch", [])),
            "ferjax_best_variant_ratio_vs_best_peer": ratio(ferjax_best, peers.get(best_peer)),
            "peak_rss_mb": rss, "missing_peers": missing, "errors": errors}


def judge(c: Comparison, against: str, minimum: float) -> Comparison:
    """c with its target (ratio vs `against` >= minimum) and whether it is met; a sweep also
    says whether every K met it."""
    key = {"torch": "ratio_vs_torch"}.get(against, "ratio_vs_best_peer")
    c = replace(c, target=Target(key, against, minimum))
    c = replace(c, target_met=None if c.ratio is None else bool(c.ratio >= minimum))
    if c.task == "sweep":
        c = replace(c, target_met_all_k=all(r["ratio"] is not None and r["ratio"] >= minimum
                                            for r in c.per_k))
    return c


def sweep_row(k: int, vm: dict[str, list[dict]], seq: dict[str, list[dict]], default: str) -> dict:
    """One K of a sweep from its group and sequential records (variant label -> one record per
    round): images/s per configuration (medians of the rounds), and the default group against
    the faster sequential (the median of the per-round ratios, its spread beside it)."""
    key = "images_per_s_per_config"
    vm_rates = {conv: median(rates_of(recs, key)) for conv, recs in vm.items()}
    seq_rates = {conv: median(rates_of(recs, key)) for conv, recs in seq.items()}
    ok = {conv: x for conv, x in seq_rates.items() if x}
    best_seq = max(ok, key=ok.get) if ok else default
    ok_vm = {conv: x for conv, x in vm_rates.items() if x}
    best_vm = max(ok_vm, key=ok_vm.get) if ok_vm else default
    paired = paired_ratios(vm.get(default, []), seq.get(best_seq, []), key)
    row = {"k": k, "vmapped_per_config": vm_rates.get(default), "vmapped_conv": default,
           "sequential_per_config": ok.get(best_seq), "sequential_conv": best_seq,
           "vmapped_per_config_by_conv": vm_rates,
           "sequential_per_config_by_conv": seq_rates,
           "best_vmapped_conv": best_vm,
           "rounds": len(vm.get(default, [])),
           "vmapped_per_config_spread": spread(rates_of(vm.get(default, []), key)),
           "sequential_per_config_spread": spread(rates_of(seq.get(best_seq, []), key)),
           "peak_rss_mb": {"vmapped": _peak(vm.get(default, [])),
                           "sequential": _peak(seq.get(best_seq, [])),
                           "vmapped_by_conv": {c: _peak(recs) for c, recs in vm.items()}},
           "status": {**{f"vmapped/{c}": recs[-1]["status"] for c, recs in vm.items()},
                      **{f"sequential/{c}": recs[-1]["status"] for c, recs in seq.items()}}}
    row["ratio"] = median(paired) or ratio(row["vmapped_per_config"], row["sequential_per_config"])
    row["ratio_spread"] = spread(paired)
    row["ratio_same_conv"] = ratio(row["vmapped_per_config"], seq_rates.get(default))
    row["ratio_best_vmapped"] = ratio(ok_vm.get(best_vm), row["sequential_per_config"])
    return row


def _peak(recs: list[dict]) -> float | None:
    return max((r["peak_rss_mb"] for r in recs if r.get("peak_rss_mb") is not None), default=None)


def with_gflops(c: Comparison, ceiling: float | None) -> Comparison:
    """A training comparison with its achieved GFLOP/s (from the stated FLOP count) and, given
    the matmul ceiling, their fraction of it."""
    if c.task != "train" or not c.flops:
        return c
    per_image = c.flops["train_flops_per_image"]
    achieved = {fw: (r * per_image / 1e9 if r else None) for fw, r in c.images_per_s.items()}
    variants = {fw: {v: (r * per_image / 1e9 if r else None) for v, r in rows.items()}
                for fw, rows in c.variant_images_per_s.items()}
    fraction = {fw: (g / ceiling if g else None) for fw, g in achieved.items()} if ceiling else None
    return replace(c, achieved_gflops=achieved, achieved_gflops_variants=variants,
                   fraction_of_ceiling=fraction)


def summarize_ceiling(start: list[dict], end: dict, torch: dict) -> dict:
    """The matmul ceiling: the best of the runs at the start and the end, and PyTorch's."""
    ok = [c["result"]["gflops"] for c in start + [end] if c["status"] == "ok"]
    return {"gflops": max(ok) if ok else None,
            "runs": [{"n": c["kwargs"]["n"], "gflops": c.get("result", {}).get("gflops"),
                      "when": "start"} for c in start]
            + [{"n": end["kwargs"]["n"], "gflops": end.get("result", {}).get("gflops"), "when": "end"}],
            "torch_gflops": torch.get("result", {}).get("gflops"),
            "definition": "float32 n x n matmul through jax.jit(jnp.dot), median of timed runs"}


def summarize_pipeline(rates: dict[str, dict], fed: dict, consumers: dict[str, dict], batch: int,
                       n_images: int, fed_workload: str, fed_variant: str) -> dict:
    """The pipeline alone (feature set -> record) against its fastest consumer (the resident
    steps, and the fed step's own), and the fed step's record: is the pipeline ever the
    bottleneck?"""
    keys = ("images_per_s", "resident_images_per_s", "data_wait_fraction", "data_wait_s",
            "dispatch_s", "backlog_s", "resident_step_s", "wall_s", "pipeline_bound")
    out = {"train_images_per_s": {fs: result_of(r, "images_per_s") for fs, r in rates.items()},
           "train_images_per_cpu_s": {fs: result_of(r, "images_per_cpu_s") for fs, r in rates.items()},
           "batch": batch, "n_images": n_images, "step_consumption_images_per_s": consumers,
           "fed": {"workload": fed_workload, **{k: result_of(fed, k) for k in keys},
                   "peak_rss_mb": fed.get("peak_rss_mb"), "status": fed["status"]}}
    if fed["status"] == "ok":
        consumers["fed step, resident batch"] = {
            "images_per_s": fed["result"]["resident_images_per_s"], "conv": fed_variant}
    osl = out["train_images_per_s"]["O-S-L"]
    fastest = max([v["images_per_s"] for v in consumers.values()], default=None)
    out["fastest_consumer_images_per_s"] = fastest
    out["faster_than_fastest_step"] = (osl > fastest) if (osl and fastest) else None
    verdicts = [v for v in (out["faster_than_fastest_step"],
                            None if fed["status"] != "ok" else not out["fed"]["pipeline_bound"])
                if v is not None]
    out["target_met"] = all(verdicts) if verdicts else None
    return out


def summarize_loop(rec: dict, variant: str) -> dict:
    """The training loop's record: loop and step images/s, and its own step's share of an
    epoch (the target; the bare step's share beside it)."""
    r = rec.get("result") or {}
    own = (r.get("loop_over_own_step") or {}).get("median")
    step_share = 1 / own if own else None
    return {"status": rec["status"], "variant": variant, "peak_rss_mb": rec.get("peak_rss_mb"),
            **{k: r.get(k) for k in ("images_per_s", "own_step_images_per_s",
                                      "own_step_images_per_s_before_after", "step_images_per_s",
                                      "loop_over_own_step", "loop_over_step", "training_over_own_step",
                                      "training_over_step", "epoch_over_training", "steps_per_epoch",
                                      "train_images", "valid_images", "epochs", "profile", "eval_flip", "data",
                                      "model", "batch")},
            "step_share": step_share,
            "target_met": None if step_share is None else step_share >= LOOP_TARGET}


def summarize_targets(comparisons: list[Comparison], pipeline: dict, loop: dict | None = None) -> list[dict]:
    rows = [{"workload": c.workload, "against": c.target.against, "min": c.target.min,
             "ratio": c.ratio, "met": c.target_met,
             "spread": getattr(c, c.target.ratio + "_spread")}
            for c in comparisons]
    if loop is not None:
        rows.append({"workload": "light training loop", "against": "its own step (steps x step / epoch)",
                     "min": LOOP_TARGET, "ratio": loop["step_share"], "met": loop["target_met"]})
    rows.append({"workload": "pipeline (O-S-L)", "against": "fastest O-S-L step; not pipeline-bound",
                 "min": 1.0, "ratio": ratio(pipeline["train_images_per_s"].get("O-S-L"),
                                            pipeline.get("fastest_consumer_images_per_s")),
                 "met": pipeline["target_met"]})
    return rows
