"""The epoch loop of a run group (K >= 1 configurations trained together on the same batches).

Per epoch: train, evaluate on valid, append one JSONL line per run, keep each run's
best-on-valid checkpoint (scored on test too, when the data has a test split), then save the
group's latest checkpoint.
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
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ferjax.config import RunConfig
from ferjax.data.ferplus import load_dataset
from ferjax.data.records import Dataset
from ferjax.data.votes import labeled_splits
from ferjax.devices import release_freed_memory
from ferjax.metrics import Scores, summarize
from ferjax.train.apart import Layout
from ferjax.train.group import Placement, check_group, create_states, member
from ferjax.train import checkpoint
from ferjax.train.state import learning_rate_schedule, state_arrays, with_arrays
from ferjax.train.workdir_lock import workdir_lock
from ferjax.version import code_version


class NonFiniteLossError(ArithmeticError):
    pass


def run_name(cfg: RunConfig) -> str:
    return f"{cfg.model.name}-{cfg.data.features}-{cfg.loss.name}-lam{cfg.loss.lam:g}-seed{cfg.seed}"


# Smaller batches evaluated faster on XLA:CPU (benchmarks/README.md, "The training loop and
# its augmentation"); the data-parallel devices must divide it.
EVAL_BATCH = 128


def evaluate_stacked(eval_fn, placement: Placement, state, data: dict, n: int) -> list[Scores]:
    """Every run of the group scored on a resident split of n images (the last batch padded)."""
    sums = None
    for start in range(0, n, EVAL_BATCH):
        idx = np.arange(start, start + EVAL_BATCH)
        mask = (idx < n).astype(np.float32)
        out = eval_fn(state, data, placement.put_indices(np.minimum(idx, n - 1).astype(np.int32)),
                      placement.put_indices(mask))
        sums = out if sums is None else jax.tree.map(lambda a, b: a + b, sums, out)
    sums = to_host(sums)
    return [summarize(jax.tree.map(lambda x: x[k], sums)) for k in range(len(sums["count"]))]


def to_host(tree):
    """Numpy copies of (global) arrays on every process. An array whose shards live on other
    processes too (runs spread over processes) is gathered, collectively: every process calls."""
    leaves = jax.tree.leaves(tree)
    if all(x.is_fully_addressable or x.is_fully_replicated for x in leaves if isinstance(x, jax.Array)):
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return multihost_utils.process_allgather(tree, tiled=True)


def _primary() -> bool:
    """Process 0 of several (or the only one): it alone writes metrics and summaries."""
    return jax.process_index() == 0


def _epoch_of(line: str) -> int | None:
    try:
        return json.loads(line)["epoch"]
    except (ValueError, KeyError, TypeError):     # a line torn by a kill mid-append
        return None


def _rewrite_jsonl(path: Path, keep_through_epoch: int) -> None:
    """Keeps the lines of the epochs the resumed checkpoint holds, once each, and drops torn
    lines and later epochs (atomic rewrite)."""
    if not _primary() or not path.exists():
        return
    kept: dict[int, str] = {}
    for ln in path.read_text().splitlines():
        epoch = _epoch_of(ln)
        if epoch is not None and epoch <= keep_through_epoch:
            kept[epoch] = ln
    lines = [kept[e] for e in sorted(kept)]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(ln + "\n" for ln in lines))
    os.replace(tmp, path)


def _write_json(path: Path, obj) -> None:
    if not _primary():
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.replace(tmp, path)


def config_differences(saved: RunConfig, asked: RunConfig) -> list[str]:
    """What stops `asked` from continuing a run of `saved`: every differing field, named, but
    the conv implementation (same parameters) and, for a schedule that does not depend on the
    run's length ("step"), the number of epochs: such a run is extended by training more."""
    def flat(cfg: RunConfig) -> dict:
        same = cfg.canonical()
        d = dataclasses.asdict(same.replace(model=dataclasses.replace(same.model, conv="auto")))
        out = {}
        for k, v in d.items():
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()} if isinstance(v, dict) else {k: v})
        return out
    a, b = flat(saved), flat(asked)
    if saved.optim.schedule == "step" and asked.optim.schedule == "step":
        a.pop("epochs"), b.pop("epochs")
    return [f"{k}: saved {a.get(k)!r}, asked {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def train_group(cfgs: list[RunConfig], workdir: str | os.PathLike, *, names: list[str] | None = None,
                dataset: Dataset | None = None, progress: bool = True, log=None,
                stop_after_steps: int | None = None) -> list[dict]:
    """Trains the group; returns one summary per run (also written to <run dir>/summary.json).
    One process at a time per workdir (ferjax/train/workdir_lock.py).

    `stop_after_steps` ends the process-equivalent early (for kill/resume tests): the loop
    returns after that many steps of this call, without saving the unfinished epoch.
    """
    Path(workdir).mkdir(parents=True, exist_ok=True)
    with workdir_lock(Path(workdir), enabled=_primary()):
        return _train_group(cfgs, Path(workdir), names=names, dataset=dataset, progress=progress,
                            log=log, stop_after_steps=stop_after_steps)


def _train_group(cfgs: list[RunConfig], workdir: Path, *, names, dataset, progress, log,
                 stop_after_steps) -> list[dict]:
    started, code = time.time(), code_version()   # the code that trains, not the checkout's at the end
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
        saved = [RunConfig.from_dict(c) for c in stored["configs"]]
        if len(saved) != len(cfgs):
            raise ValueError(f"{workdir} holds a group of {len(saved)} runs ({stored['names']}), "
                             f"asked for {len(cfgs)}; use a new --workdir to start afresh")
        diffs = [f"{n}: {d}" for n, s, c in zip(stored["names"], saved, cfgs)
                 for d in config_differences(s, c)]
        if diffs:
            hint = (" (a one-cycle schedule depends on the number of epochs, so its runs cannot "
                    "be extended)" if any(d.split(": ")[1] == "epochs" for d in diffs) else "")
            raise ValueError(f"{workdir} holds a run of another configuration: {'; '.join(diffs)}"
                             f"{hint}; use a new --workdir to start afresh")
    _write_json(workdir / "group.json", group_meta)

    dataset = dataset if dataset is not None else load_dataset(
        base.data.data, synthetic_per_class=base.data.synthetic_per_class)
    splits, source = labeled_splits(dataset, base.data), dataset.source
    train = splits["train"]
    bs = base.data.batch_size
    if bs > len(train):
        raise ValueError(f"batch size {bs} is larger than the {len(train)} training images")
    steps_per_epoch = len(train) // bs
    reduced = base.data.train_subset > 0 or base.data.valid_subset > 0
    log(f"data: {source} ({'REDUCED: ' if reduced else ''}{len(train)} train, {len(splits['valid'])} valid, "
        f"{len(splits['test']) if 'test' in splits else 'no'} test)"
        f"; {k_runs} run(s) on {jax.device_count()} device(s)")

    layout = Layout.create(k_runs, bs)
    placement = layout.group
    if layout.apart:
        log(f"the {k_runs} runs step apart, each its own program, dealt round the devices")
    if EVAL_BATCH % placement.mesh.shape["data"]:
        raise ValueError(f"{placement.mesh.shape['data']} data-parallel devices do not divide the "
                         f"evaluation batch of {EVAL_BATCH}")
    # placed first, so a checkpoint restores straight into this layout (any number of devices
    # or processes), every process reading its own shards
    state = placement.put_state(create_states(cfgs, steps_per_epoch))
    start_epoch = 0
    best = [{"epoch": 0, "valid_accuracy": -1.0} for _ in cfgs]
    if checkpoint.latest_step(workdir / "latest") is not None:
        arrays, meta = checkpoint.restore(workdir / "latest", state_arrays(state))
        state, start_epoch, best = with_arrays(state, arrays), meta["epoch"], meta["best"]
        log(f"resuming {workdir} after epoch {start_epoch}")
    for d in run_dirs:
        d.mkdir(parents=True, exist_ok=True)
        _rewrite_jsonl(d / "metrics.jsonl", start_epoch)
        # a kill between an epoch's best/ and latest/ writes leaves a best/ step that the
        # resumed run will write again: drop it (the previous best stays: best/ keeps two)
        checkpoint.drop_steps_after(d / "best", start_epoch)
    step_fns = layout.per_piece(lambda p: p.train_step(base, steps_per_epoch))
    eval_fn = placement.eval_step(base)
    train_data = layout.per_piece(lambda p: p.put_data(train))
    resident = {name: placement.put_eval_data(split, base) for name, split in splits.items()
                if name != "train"}
    data_key = jax.random.PRNGKey(base.data_seed_or_seed)
    data_keys = layout.per_piece(lambda p: jax.device_put(data_key, p.replicated))
    release_freed_memory()       # what building the states freed (and after each compile below)
    batch_norm = bool(jax.tree.leaves(state.batch_stats))
    steps_done = 0
    epoch_seconds: list[float] = []        # whole epochs (train + evaluation + checkpoints)

    for epoch in range(start_epoch, base.epochs):
        t0, states = time.time(), layout.split(state)
        losses, sums = [[] for _ in states], [None for _ in states]
        order = epoch_order(len(train), bs, base.data_seed_or_seed, epoch)
        bar = tqdm(range(steps_per_epoch), total=steps_per_epoch, desc=f"epoch {epoch + 1}/{base.epochs}",
                   disable=not progress or not _primary(), file=sys.stderr, leave=False,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0)
        for i in bar:
            idx = layout.per_piece(lambda p: p.put_indices(order[i]))
            for j, step_fn in enumerate(step_fns):
                states[j], m = step_fn(states[j], train_data[j], idx[j], data_keys[j],
                                       np.int32(epoch), np.int32(i))
                losses[j].append(m["loss"])
                sums[j] = m if sums[j] is None else jax.tree.map(lambda a, b: a + b, sums[j], m)
            if steps_done == 0:
                jax.block_until_ready(states)
                release_freed_memory()
            steps_done += 1
            if stop_after_steps is not None and steps_done >= stop_after_steps:
                return []
        jax.block_until_ready(losses)      # dispatch is asynchronous: time the finished work
        train_time = time.time() - t0
        state = layout.join(states)
        _check_finite(np.concatenate([np.asarray(to_host(jnp.stack(ls))) for ls in losses], axis=1),
                      epoch, steps_per_epoch, names, workdir)
        sums = jax.tree.map(lambda *xs: np.concatenate(xs), *to_host(sums))
        valid = evaluate_stacked(eval_fn, placement, state, resident["valid"], len(splits["valid"]))
        improved = [v.accuracy > b["valid_accuracy"] for v, b in zip(valid, best)]
        # Only a kept checkpoint's test score is read: score test only when a run keeps one.
        test = (evaluate_stacked(eval_fn, placement, state, resident["test"], len(splits["test"]))
                if "test" in splits and any(improved) else None)
        if epoch == start_epoch:
            release_freed_memory()
        lr = _lr(base, steps_per_epoch, epoch)
        for k, (cfg, d) in enumerate(zip(cfgs, run_dirs)):
            line = {"epoch": epoch + 1, "train_loss": float(sums["loss"][k]) / steps_per_epoch,
                    "train_accuracy": 100.0 * float(sums["correct"][k] / sums["count"][k]),
                    "valid_accuracy": valid[k].accuracy, "valid_loss": valid[k].loss,
                    "test_accuracy": test[k].accuracy if test else None, "learning_rate": lr,
                    "train_seconds": train_time, "images_per_second": k_runs * steps_per_epoch * bs / train_time,
                    # since this call started (data loading and compiles included): time to accuracy
                    "wall_seconds": time.time() - started}
            if improved[k]:
                best[k] = {"epoch": epoch + 1, "valid_accuracy": valid[k].accuracy,
                           "test_accuracy": test[k].accuracy if test else None,
                           "valid": valid[k].to_json(), "test": test[k].to_json() if test else None}
                one = member(state, k)
                kept = {"params": one.params, "centers": one.centers}
                if batch_norm:
                    kept["batch_stats"] = one.batch_stats
                checkpoint.save(d / "best", epoch + 1, kept,
                                {"config": cfg.to_dict(), "epoch": epoch + 1, "data": source,
                                 "reduced": reduced, "valid_accuracy": valid[k].accuracy,
                                 "batch_norm": batch_norm})
            if _primary():
                with open(d / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(line) + "\n")
        checkpoint.save(workdir / "latest", epoch + 1, state_arrays(state),
                        {"epoch": epoch + 1, "best": best, "names": names})
        epoch_seconds.append(time.time() - t0)
        left = (base.epochs - epoch - 1) * float(np.median(epoch_seconds[-3:]))
        log(f"epoch {epoch + 1}/{base.epochs} {train_time:.0f}s "
            f"({k_runs * steps_per_epoch * bs / train_time:.0f} img/s, ~{left:.0f}s left): " + "; ".join(
                f"{n} train {100 * sums['correct'][k] / sums['count'][k]:.1f} valid {valid[k].accuracy:.2f}"
                for k, n in enumerate(names)))

    summaries = []
    for k, (cfg, d, n) in enumerate(zip(cfgs, run_dirs, names)):
        s = {"name": n, "config": cfg.to_dict(), "data": source, "reduced": reduced,
             "train_images": len(train), "valid_images": len(splits["valid"]), "epochs": base.epochs, "best_epoch": best[k]["epoch"],
             "valid_accuracy": best[k]["valid_accuracy"], "test_accuracy": best[k].get("test_accuracy"),
             "valid": best[k].get("valid"), "test": best[k].get("test"), "checkpoint": str(d),
             "code": code}
        _write_json(d / "summary.json", s)
        summaries.append(s)
    return summaries


def _log(msg: str) -> None:
    print(msg, flush=True)    # flushed: long runs log to files that people tail


def _lr(cfg: RunConfig, steps_per_epoch: int, epoch: int) -> float:
    return float(learning_rate_schedule(cfg.optim, steps_per_epoch, cfg.epochs)(epoch * steps_per_epoch))


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """(steps, batch_size) image indices of one epoch: a permutation drawn from (seed, epoch),
    the remainder dropped, so a resumed run replays exactly the batches it would have seen."""
    steps = n // batch_size
    return np.random.default_rng((seed, epoch)).permutation(n)[:steps * batch_size] \
        .reshape(steps, batch_size).astype(np.int32)


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
