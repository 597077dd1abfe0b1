"""The epoch loop of a run group (K >= 1 configurations trained together on the same batches).

Per epoch: train, evaluate on valid (and test when the data has it), append one JSONL line
per run, keep each run's best-on-valid checkpoint, then save the group's latest checkpoint.
Run again with the same workdir and it resumes after the last completed epoch; since every
batch and dropout key is a pure function of (seed, epoch, step), the resumed run ends with
the same parameters as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np
from tqdm.auto import tqdm

from ferjax.config import RunConfig
from ferjax.data.pipeline import eval_batches, train_batches
from ferjax.data.records import Dataset, LabeledSplit
from ferjax.data.splits import labeled_splits
from ferjax.metrics import summarize
from ferjax.train import checkpoint
from ferjax.train.group import Placement, check_group, create_states, member
from ferjax.train.state import learning_rate_schedule, state_arrays, with_arrays


class NonFiniteLossError(ArithmeticError):
    pass


def run_name(cfg: RunConfig) -> str:
    return f"{cfg.model.name}-{cfg.data.features}-{cfg.loss.name}-lam{cfg.loss.lam:g}-seed{cfg.seed}"


def evaluate_stacked(eval_fn, placement: Placement, state, split: LabeledSplit, cfg: RunConfig) -> list[dict]:
    sums = None
    for batch in eval_batches(split, feature_set=cfg.data.features, batch_size=cfg.data.batch_size,
                              image_size=cfg.data.image_size):
        out = eval_fn(state, placement.put_batch(batch))
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    sums = jax.device_get(sums)
    return [summarize(jax.tree.map(lambda x: x[k], sums)) for k in range(len(sums["count"]))]


def _rewrite_jsonl(path: Path, keep_through_epoch: int) -> None:
    """Drops lines of epochs that the resumed checkpoint does not contain (atomic rewrite)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines()
             if ln.strip() and json.loads(ln)["epoch"] <= keep_through_epoch]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    if jax.process_index() != 0:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def _same_run(cfg: RunConfig) -> RunConfig:
    """What must match to resume: all but the conv implementation, which shares the parameters."""
    return cfg.replace(model=dataclasses.replace(cfg.model, conv="auto"))


def train_group(cfgs: list[RunConfig], workdir: str | os.PathLike, *, names: list[str] | None = None,
                dataset: Dataset | None = None, progress: bool = True, log=None,
                stop_after_steps: int | None = None) -> list[dict]:
    """Trains the group; returns one summary per run (also written to <run dir>/summary.json).

    `stop_after_steps` ends the process-equivalent early (for kill/resume tests): the loop
    returns after that many steps of this call, without saving the unfinished epoch.
    """
    check_group(cfgs)
    log = log or _log
    base, k_runs = cfgs[0], len(cfgs)
    workdir = Path(workdir)
    names = names or [run_name(c) for c in cfgs]
    run_dirs = [workdir] if k_runs == 1 else [workdir / "runs" / n for n in names]
    group_meta = {"configs": [c.to_dict() for c in cfgs], "names": names}
    workdir.mkdir(parents=True, exist_ok=True)
    if (workdir / "group.json").exists():
        stored = json.loads((workdir / "group.json").read_text())
        if [_same_run(RunConfig.from_dict(c)) for c in stored["configs"]] != [_same_run(c) for c in cfgs]:
            raise ValueError(f"{workdir} holds a run of another configuration "
                             f"({stored['names']}); use a new --workdir to start afresh")
    _write_json(workdir / "group.json", group_meta)

    splits, source = labeled_splits(base, dataset)
    train = splits["train"]
    bs = base.data.batch_size
    if bs > len(train):
        raise ValueError(f"batch size {bs} is larger than the {len(train)} training images")
    steps_per_epoch = len(train) // bs
    reduced = base.data.train_subset > 0 or base.data.valid_subset > 0
    log(f"data: {source} ({'REDUCED: ' if reduced else ''}{len(train)} train, {len(splits['valid'])} valid, "
        f"{len(splits['test']) if 'test' in splits else 'no'} test)"
        f"; {k_runs} run(s) on {jax.device_count()} device(s)")

    placement = Placement.for_group(k_runs, bs, base.model.conv)
    state = create_states(cfgs, steps_per_epoch)
    start_epoch = 0
    best = [{"epoch": 0, "valid_accuracy": -1.0} for _ in cfgs]
    if checkpoint.latest_step(workdir / "latest") is not None:
        arrays, meta = checkpoint.restore(workdir / "latest", state_arrays(state))
        state, start_epoch, best = with_arrays(state, arrays), meta["epoch"], meta["best"]
        log(f"resuming {workdir} after epoch {start_epoch}")
    for d in run_dirs:
        d.mkdir(parents=True, exist_ok=True)
        _rewrite_jsonl(d / "metrics.jsonl", start_epoch)
    state = placement.put_state(state)
    step_fn = placement.train_step(sample_targets=base.data.label_mode == "probability")
    eval_fn = placement.eval_step()
    steps_done = 0

    for epoch in range(start_epoch, base.epochs):
        t0, losses, sums = time.time(), [], None
        batches = train_batches(train, feature_set=base.data.features, batch_size=bs,
                                seed=base.data_seed_or_seed, epoch=epoch, image_size=base.data.image_size)
        bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{base.epochs}",
                   disable=not progress, file=sys.stderr, leave=False,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0)
        for batch in bar:
            state, m = step_fn(state, placement.put_batch(batch))
            losses.append(m["loss"])
            sums = m if sums is None else jax.tree.map(lambda a, b: a + b, sums, m)
            steps_done += 1
            if stop_after_steps is not None and steps_done >= stop_after_steps:
                return []
        jax.block_until_ready(losses)      # dispatch is asynchronous: time the finished work
        train_time = time.time() - t0
        _check_finite(np.stack(jax.device_get(losses)), epoch, steps_per_epoch, names, workdir)
        sums = jax.device_get(sums)
        valid = evaluate_stacked(eval_fn, placement, state, splits["valid"], base)
        test = (evaluate_stacked(eval_fn, placement, state, splits["test"], base)
                if "test" in splits else None)
        lr = _lr(base, steps_per_epoch, epoch)
        for k, (cfg, d) in enumerate(zip(cfgs, run_dirs)):
            line = {"epoch": epoch + 1, "train_loss": float(sums["loss"][k]) / steps_per_epoch,
                    "train_accuracy": 100.0 * float(sums["correct"][k] / sums["count"][k]),
                    "valid_accuracy": valid[k]["accuracy"], "valid_loss": valid[k]["loss"],
                    "test_accuracy": test[k]["accuracy"] if test else None, "learning_rate": lr,
                    "train_seconds": train_time, "images_per_second": k_runs * steps_per_epoch * bs / train_time}
            if valid[k]["accuracy"] > best[k]["valid_accuracy"]:
                best[k] = {"epoch": epoch + 1, "valid_accuracy": valid[k]["accuracy"],
                           "test_accuracy": test[k]["accuracy"] if test else None,
                           "valid": valid[k], "test": test[k] if test else None}
                one = member(state, k)
                checkpoint.save(d / "best", epoch + 1, {"params": one.params, "centers": one.centers},
                                {"config": cfg.to_dict(), "epoch": epoch + 1, "data": source,
                                 "reduced": reduced, "valid_accuracy": valid[k]["accuracy"]})
            if jax.process_index() == 0:
                with open(d / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
        checkpoint.save(workdir / "latest", epoch + 1, state_arrays(state),
                        {"epoch": epoch + 1, "best": best, "names": names})
        log(f"epoch {epoch + 1}/{base.epochs} {train_time:.0f}s "
            f"({k_runs * steps_per_epoch * bs / train_time:.0f} img/s): " + "; ".join(
                f"{n} train {100 * sums['correct'][k] / sums['count'][k]:.1f} valid {valid[k]['accuracy']:.2f}"
                for k, n in enumerate(names)))

    summaries = []
    for k, (cfg, d, n) in enumerate(zip(cfgs, run_dirs, names)):
        s = {"name": n, "config": cfg.to_dict(), "data": source, "reduced": reduced,
             "train_images": len(train), "valid_images": len(splits["valid"]), "epochs": base.epochs, "best_epoch": best[k]["epoch"],
             "valid_accuracy": best[k]["valid_accuracy"], "test_accuracy": best[k].get("test_accuracy"),
             "valid": best[k].get("valid"), "test": best[k].get("test"), "checkpoint": str(d)}
        _write_json(d / "summary.json", s)
        summaries.append(s)
    return summaries


def _log(msg: str) -> None:
    print(msg, flush=True)    # flushed: long runs log to files that people tail


def _lr(cfg: RunConfig, steps_per_epoch: int, epoch: int) -> float:
    return float(learning_rate_schedule(cfg.optim, steps_per_epoch)(epoch * steps_per_epoch))


def _check_finite(losses: np.ndarray, epoch: int, steps_per_epoch: int, names, workdir) -> None:
    bad = np.argwhere(~np.isfinite(losses))
    if len(bad):
        step, k = bad[0]
        raise NonFiniteLossError(
            f"non-finite loss ({losses[step, k]}) in run {names[k]} at epoch {epoch + 1}, step "
            f"{epoch * steps_per_epoch + step + 1} (step {step + 1} of the epoch); training stopped. "
            f"The last good checkpoint (epoch {epoch}) is kept in {workdir}")


def train(cfg: RunConfig, workdir, **kw) -> dict:
    return train_group([cfg], workdir, **kw)[0]
