"""ferjax's side of the benchmark: the production training step (ferjax.train.group's vmapped,
donated step, center loss and center update included), inference, the sweep (a group
stepped as the training loop steps it, ferjax.train.apart) and its sequential baseline, the
matmul ceiling, FLOP counts and the input pipeline.

Every function returns a JSON-able dict; `run.py` calls each in its own process.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # the repo, for `ferjax`

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import MIN_TIME_S, random_batch, rate, time_steps, top_ops_from_trace  # noqa: E402
from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig  # noqa: E402
from ferjax.devices import DEFAULT_CPU_DEVICES, release_freed_memory, share_malloc_arena, usable_cores  # noqa: E402
from ferjax.features import num_channels  # noqa: E402
from ferjax.models import (build_model, count_params, flops_per_image, inference_model, init_variables,  # noqa: E402
                           resolve_conv)
from ferjax.train.group import Placement, create_states  # noqa: E402
from ferjax.train.apart import Layout  # noqa: E402

LAM = 0.1              # center-loss weight of the benchmarked runs (the step always computes it)
STEPS_PER_EPOCH = 100  # only sets the learning-rate schedule


def default_conv() -> str:
    return resolve_conv(ModelConfig().conv)


def default_variant() -> str:
    """What `ferjax train` runs by default: the default conv on DEFAULT_CPU_DEVICES devices
    (0: one per core)."""
    n = DEFAULT_CPU_DEVICES or usable_cores()
    return f"{default_conv()}+{n}dev" if n > 1 else default_conv()


def conv_impls() -> list[str]:
    from ferjax.models.conv import CONV_IMPLS
    return list(CONV_IMPLS)


def run_configs(model: str, batch: int, features: str, conv: str, image_size: int,
                k: int = 1) -> list[RunConfig]:
    data = DataConfig(features=features, batch_size=batch, image_size=image_size)
    return [RunConfig(data=data, model=ModelConfig(name=model, conv=conv), loss=LossConfig(lam=LAM * (i + 1)),
                      seed=i, data_seed=0) for i in range(k)]


def _train_setup(model, batch, features, conv, image_size, k, together):
    """The group's states, steps and batches per piece, as the training loop steps them (on a
    CPU host, each run apart), or, `together`, all K in one vmapped step."""
    cfgs = run_configs(model, batch, features, conv, image_size, k)
    layout = Layout.create(k, batch, together=bool(together))
    states = layout.split(layout.group.put_state(create_states(cfgs, STEPS_PER_EPOCH)))
    steps = layout.per_piece(lambda p: p.batch_train_step())
    host = random_batch(batch, num_channels(features), image_size)
    data = layout.per_piece(lambda p: p.put_batch(host))
    return states, steps, data


def _params_of(state) -> int:
    return count_params(jax.tree.map(lambda x: x[0], state.params))


def _named(profile_steps: int):
    """Flax module names in the HLO metadata (jax.named_scope only: same compiled code), so a
    profile can say which layer an op belongs to."""
    import contextlib
    import flax.linen as nn
    return nn.override_named_call(True) if profile_steps else contextlib.nullcontext()


def train(model: str = "light", batch: int = 64, features: str = "O", conv: str | None = None,
          warmup: int = 3, steps: int = 10, image_size: int = 64, k: int = 1,
          profile_steps: int = 0, kernel_grad: str = "", together: int = 0) -> dict:
    """Images/s of the production training step for K stacked runs (K=1: one run):
    `images_per_s` counts every configuration's images (K*batch per step),
    `images_per_s_per_config` one configuration's (batch per step). `kernel_grad` (one of
    ferjax.models.conv.KERNEL_GRADS) forces that weight-gradient method on every layer of the
    "xla" conv in this process, to compare against the per-layer choice. `together`: the K
    runs in one vmapped step even where the training loop steps them apart."""
    if kernel_grad:
        from ferjax.models import conv as conv_module
        if kernel_grad not in conv_module.KERNEL_GRADS:
            raise ValueError(f"kernel_grad {kernel_grad!r}: one of {', '.join(conv_module.KERNEL_GRADS)}")
        conv_module.kernel_grad_method = lambda height, width, channels_in: kernel_grad
    with _named(profile_steps):
        return _train(model, batch, features, conv, warmup, steps, image_size, k, profile_steps,
                      together)


def _train(model, batch, features, conv, warmup, steps, image_size, k, profile_steps,
           together) -> dict:
    conv = conv or default_conv()
    holder = {}
    holder["states"], step_fns, data = _train_setup(model, batch, features, conv, image_size, k,
                                                    together)
    params = _params_of(holder["states"][0])
    release_freed_memory()       # as the training loop does, here and after the compile

    def one():
        out = [f(s, d) for f, s, d in zip(step_fns, holder["states"], data)]
        holder["states"] = [s for s, _ in out]
        holder["metrics"] = [m for _, m in out]
        jax.block_until_ready(out)

    timing = time_steps(one, warmup, steps, after_first=release_freed_memory)
    loss = np.concatenate([np.asarray(m["loss"]) for m in holder["metrics"]])
    out = {"images_per_s": rate(timing, batch * k), "images_per_s_per_config": rate(timing, batch),
           "params": params, "conv": conv, "k": k, "devices": jax.device_count(),
           "apart": len(step_fns) > 1, "loss_finite": bool(np.all(np.isfinite(loss))), **timing}
    if profile_steps:   # the first piece's cached executable
        hlo = step_fns[0].lower(holder["states"][0], data[0]).compile().as_text()
        out["profile"] = _profile(one, profile_steps, hlo)
    return out


def sequential(model: str = "light", batch: int = 64, features: str = "O", conv: str | None = None,
               warmup: int = 3, steps: int = 10, image_size: int = 64, k: int = 1) -> dict:
    """The sweep's baseline: the same K configurations trained one after another, each with
    the single-run step, `steps` timed steps each. Per configuration, images/s is what each
    configuration gets over the whole sequential sweep: steps*batch / total timed seconds
    (comparable with the vmapped step's batch / step time); `images_per_s` is the sum over
    the K configurations."""
    conv = conv or default_conv()
    cfgs = run_configs(model, batch, features, conv, image_size, k)
    placement = Placement.create(1, batch)
    step = placement.batch_train_step()
    data = placement.put_batch(random_batch(batch, num_channels(features), image_size))
    total, first, per_config, images = 0.0, None, [], 0
    for cfg in cfgs:
        holder = {"state": placement.put_state(create_states([cfg], STEPS_PER_EPOCH))}
        release_freed_memory()   # each configuration as a run of its own: see _train

        def one():
            holder["state"], metrics = step(holder["state"], data)
            jax.block_until_ready((holder["state"], metrics))

        timing = time_steps(one, warmup, steps, after_first=release_freed_memory)
        first = timing["first_step_s"] if first is None else first
        total += sum(timing["step_times_s"])
        images += batch * timing["steps"]
        per_config.append(timing["median_step_s"])
        holder.clear()   # free this configuration's state before the next is built
    # every configuration timed for the same number of steps: each gets images/k of the total
    return {"images_per_s_per_config": images / k / total, "images_per_s": images / total,
            "k": k, "conv": conv,
            "median_step_s_per_config": per_config, "first_step_s": first,
            "warmup": warmup, "steps": steps}


def infer(model: str = "light", batch: int = 256, features: str = "O", conv: str | None = None,
          warmup: int = 3, steps: int = 10, image_size: int = 64, profile_steps: int = 0) -> dict:
    """Images/s of the jitted forward pass (train=False), logits only; one malloc arena, as
    ferjax's inference commands set it (this worker has run no JAX operation yet)."""
    share_malloc_arena()
    with _named(profile_steps):
        return _infer(model, batch, features, conv, warmup, steps, image_size, profile_steps)


def _infer(model, batch, features, conv, warmup, steps, image_size, profile_steps) -> dict:
    conv = conv or default_conv()
    net = build_model(model, conv)
    variables = init_variables(net, jax.random.PRNGKey(0), num_channels(features), image_size)
    net, params = inference_model(model, variables["params"], variables.get("batch_stats"), conv)
    fwd = jax.jit(lambda p, x: net.apply({"params": p}, x, train=False)[0])
    x = jnp.asarray(random_batch(batch, num_channels(features), image_size)["image"])
    devices = jax.devices()
    if len(devices) > 1 and batch % len(devices) == 0:   # several XLA devices: shard the batch
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        mesh = Mesh(np.asarray(devices), ("data",))
        x = jax.device_put(x, NamedSharding(mesh, P("data")))
        params = jax.device_put(params, NamedSharding(mesh, P()))

    def one():
        jax.block_until_ready(fwd(params, x))

    timing = time_steps(one, warmup, steps)
    out = {"images_per_s": rate(timing, batch), "params": count_params(params), "conv": conv,
           "devices": len(devices), **timing}
    if profile_steps:
        out["profile"] = _profile(one, profile_steps, fwd.lower(params, x).compile().as_text())
    return out


def _profile(one, n: int, hlo_text: str | None = None) -> dict:
    with tempfile.TemporaryDirectory() as d:
        jax.profiler.start_trace(d)
        for _ in range(n):
            one()
        jax.profiler.stop_trace()
        return top_ops_from_trace(d, n, hlo_text=hlo_text)


def ceiling(n: int = 2048, warmup: int = 2, steps: int = 5) -> dict:
    """float32 (n x n) @ (n x n) through jax: the machine's matrix-product rate."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    timing = time_steps(lambda: jax.block_until_ready(dot(a, b)), warmup, steps)
    return {"n": n, "gflops": 2.0 * n ** 3 / timing["median_step_s"] / 1e9, **timing}


def flops(model: str, features: str, image_size: int = 64) -> dict:
    """Stated FLOP counts: XLA's forward count of the "lax" (plain nn.Conv) model; training
    is taken as 3x forward (forward + input gradient + weight gradient)."""
    fwd = flops_per_image(build_model(model, "lax"), num_channels(features), image_size)
    return {"forward_flops_per_image": fwd, "train_flops_per_image": 3.0 * fwd,
            "source": "XLA cost_analysis of the 'lax' model's forward pass; train = 3 x forward"}


def probe(image_size: int = 64) -> dict:
    """Versions, devices, conv implementations and the default, for the report header."""
    import flax
    import jaxlib
    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
            "numpy": np.__version__, "devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
            "default_conv": default_conv(), "default_variant": default_variant(),
            "conv_impls": conv_impls()}


def pipeline(feature_set: str = "O-S-L", n_images: int = 10240, batch: int = 64) -> dict:
    """The tf.data training pipeline alone (benchmarks/pipeline.py): images/s, and per CPU-s."""
    from benchmarks.pipeline import _timed
    wall, cpu = _timed(feature_set, n_images, batch, train=True)
    return {"images_per_s": wall, "images_per_cpu_s": cpu, "feature_set": feature_set,
            "n_images": n_images, "batch": batch}


def pipeline_fed(model: str = "light", batch: int = 64, features: str = "O-S-L",
                 conv: str | None = None, n_images: int = 5120, warmup: int = 3,
                 image_size: int = 64) -> dict:
    """The training step fed by the real tf.data pipeline, as ferjax.train.loop runs it (no
    blocking between steps: the loop dispatches a step and pulls the next batch while it runs).

    Where the loop's time goes tells which side limits: `data_wait_s` in next(iterator)
    (waiting for the pipeline), `dispatch_s` in put_batch + the step call (blocked by the
    runtime's queue of in-flight steps), and `backlog_s`, the time from the last dispatch to
    the last step's end (work the step still had queued). The pipeline is the bottleneck when
    the loop waits for data and the step has no backlog (less than two resident steps).
    """
    from benchmarks.pipeline import random_split
    from ferjax.data.pipeline import train_batches
    conv = conv or default_conv()
    cfgs = run_configs(model, batch, features, conv, image_size)
    placement = Placement.create(1, batch)
    holder = {"state": placement.put_state(create_states(cfgs, STEPS_PER_EPOCH))}
    step = placement.batch_train_step()
    resident = placement.put_batch(random_batch(batch, num_channels(features), image_size))

    def one():
        holder["state"], _ = step(holder["state"], resident)
        jax.block_until_ready(holder["state"])

    step_s = time_steps(one, warmup, 3)["median_step_s"]   # the resident step, same process
    state = holder.pop("state")
    split = random_split(n_images)
    it = iter(train_batches(split, feature_set=features, batch_size=batch, seed=0, epoch=0,
                            image_size=image_size))
    first = next(it)                       # dataset construction and first batch, untimed
    state, m = step(state, placement.put_batch(first))
    jax.block_until_ready(state)
    data_wait = dispatch = 0.0
    count, t0 = 0, time.perf_counter()
    while True:
        t = time.perf_counter()
        try:
            b = next(it)
        except StopIteration:
            break
        t1 = time.perf_counter()
        state, m = step(state, placement.put_batch(b))
        t2 = time.perf_counter()
        data_wait, dispatch = data_wait + (t1 - t), dispatch + (t2 - t1)
        count += len(b["image"])
    t_last = time.perf_counter()
    jax.block_until_ready(state)
    t_end = time.perf_counter()
    wall, backlog = t_end - t0, t_end - t_last
    pipeline_bound = bool(data_wait / wall > 0.05 and backlog < 2 * step_s) if wall > 0 else None
    return {"images_per_s": count / wall if wall > 0 else float("nan"), "images": count,
            "resident_images_per_s": batch / step_s, "resident_step_s": step_s, "wall_s": wall,
            "data_wait_s": data_wait, "dispatch_s": dispatch, "backlog_s": backlog,
            "data_wait_fraction": data_wait / wall if wall > 0 else float("nan"),
            "pipeline_bound": pipeline_bound, "conv": conv,
            "loss_finite": bool(np.all(np.isfinite(np.asarray(m["loss"]))))}


def loop(model: str = "light", batch: int = 64, features: str = "O", conv: str | None = None,
         per_class: int = 1000, epochs: int = 3, warmup: int = 3, image_size: int = 64,
         profile: str = "fast", data: str = "synthetic") -> dict:
    """The production loop (ferjax.train.loop.train of a profile's run: resident data,
    augmentation inside the step, an evaluation, checkpoints and a metrics line every epoch)
    on `data`: a FERPlus folder, or the built-in faces in the full data's proportions (valid a
    ninth of train, as FERPlus's; no test split, as the shared copy). Each epoch after the first (which holds the compiles),
    as wall time over steps x step time, against two steps timed in the same process on a
    fixed batch: the loop's own jitted step (gather the batch from the resident split, augment
    it, train; the mean of its medians before and after the loop) and the bare step on an
    already preprocessed batch (the peers' workload)."""
    import dataclasses
    import json
    import statistics
    from ferjax.configs import get_config
    from ferjax.data.ferplus import load_dataset
    from ferjax.data.synthetic import make_synthetic
    from ferjax.data.votes import labeled_splits
    from ferjax.train.loop import epoch_order, train as train_run
    conv = conv or default_conv()
    cfg = get_config(model, profile)
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, data=data, synthetic_per_class=per_class,
                                               features=features, batch_size=batch, image_size=image_size),
                      model=dataclasses.replace(cfg.model, conv=conv), epochs=epochs)
    dataset = (make_synthetic(per_class, valid_fraction=0.1, test_fraction=0.0) if data == "synthetic"
               else load_dataset(data))
    train = labeled_splits(dataset, cfg.data)["train"]
    steps = len(train) // batch
    placement = Placement.create(1, batch)
    holder = {"state": placement.put_state(create_states([cfg], steps))}
    own = placement.train_step(cfg, steps)
    data = placement.put_data(train)
    idx = placement.put_indices(epoch_order(len(train), batch, 0, 0)[0])
    key = jax.device_put(jax.random.PRNGKey(0), placement.replicated)

    def own_step():
        holder["state"], m = own(holder["state"], data, idx, key, np.int32(0), np.int32(0))
        jax.block_until_ready((holder["state"], m))

    # timed before and after the loop: this machine's speed drifts by more than the goal's margin
    own_before = time_steps(own_step, warmup, 60, after_first=release_freed_memory)["median_step_s"]
    with tempfile.TemporaryDirectory(prefix="ferjax-loop-") as d:
        summary = train_run(cfg, d, dataset=dataset, progress=False, log=lambda msg: None)
        lines = [json.loads(x) for x in (Path(d) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    own_after = time_steps(own_step, 1, 60)["median_step_s"]
    own_s = (own_before + own_after) / 2
    del holder["state"], data
    bare_s = _train(model, batch, features, conv, warmup, 10, image_size, 1, 0, together=False)["median_step_s"]

    walls = [b["wall_seconds"] - a["wall_seconds"] for a, b in zip(lines, lines[1:])]
    trains = [b["train_seconds"] for b in lines[1:]]

    def over(step_s):
        ratios = sorted(w / (steps * step_s) for w in walls)
        return {"median": statistics.median(ratios), "max": ratios[-1], "epochs": len(ratios)}

    return {"images_per_s": steps * batch / statistics.median(walls),
            "own_step_images_per_s": batch / own_s, "step_images_per_s": batch / bare_s,
            "own_step_images_per_s_before_after": [batch / own_before, batch / own_after],
            "loop_over_own_step": over(own_s), "loop_over_step": over(bare_s),
            # the epoch's training (as the loop logs it) against its own step, and the whole
            # epoch (evaluation, checkpoints, metrics) against that training time
            "training_over_own_step": statistics.median(t / (steps * own_s) for t in trains),
            "training_over_step": statistics.median(t / (steps * bare_s) for t in trains),
            "epoch_over_training": statistics.median(w / t for w, t in zip(walls, trains)),
            "steps_per_epoch": steps, "train_images": summary["train_images"],
            "valid_images": summary["valid_images"], "epochs": epochs, "profile": profile,
            "data": summary["data"],
            "eval_flip": cfg.eval_flip, "conv": conv, "model": model, "batch": batch, "features": features}


VGG13_CONV_SHAPES = ((64, 1, 64), (64, 64, 64), (32, 64, 128), (32, 128, 128), (16, 128, 256),
                     (16, 256, 256), (8, 256, 256))   # (side, Cin, Cout); 8x8 also gets 256->256


def _conv_layer_inputs(batch: int, side: int, cin: int, cout: int):
    """Input, kernel and an output cotangent of one 3x3 convolution layer, seeded."""
    rng = np.random.default_rng(0)
    return (jnp.asarray(rng.standard_normal((batch, side, side, cin), np.float32)),
            jnp.asarray(rng.standard_normal((3, 3, cin, cout), np.float32) * 0.05),
            jnp.asarray(rng.standard_normal((batch, side, side, cout), np.float32)))


def conv_layers(conv: str | None = None, batch: int = 64, warmup: int = 2, steps: int = 5,
                shapes=VGG13_CONV_SHAPES) -> dict:
    """Per-layer cost of one 3x3 convolution, forward alone and forward + both gradients
    (input and weight), for VGG13's layer shapes: ms and GFLOP/s (a multiply-add = 2 FLOPs;
    training = 3 x forward). Says which layers hold a training step below the ceiling."""
    from ferjax.models.conv import conv3x3_matmul
    conv = conv or default_conv()
    if conv == "matmul":
        f = conv3x3_matmul
    else:   # "lax" and "xla": XLA's convolution, as nn.Conv(padding="SAME") runs it
        f = lambda x, k: jax.lax.conv_general_dilated(  # noqa: E731
            x, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    rows = []
    for side, cin, cout in shapes:
        x, k, r = _conv_layer_inputs(batch, side, cin, cout)
        fwd = jax.jit(f)
        # the first layer's input gradient is never needed in training: weight gradient only
        argnums = (1,) if cin == 1 else (0, 1)
        grad = jax.jit(jax.grad(lambda x, k: jnp.sum(f(x, k) * r), argnums=argnums))
        flops = 2.0 * batch * side * side * 9 * cin * cout
        t_f = time_steps(lambda: jax.block_until_ready(fwd(x, k)), warmup, steps,
                         min_time=min(MIN_TIME_S, 2.0))["median_step_s"]
        t_g = time_steps(lambda: jax.block_until_ready(grad(x, k)), warmup, steps,
                         min_time=min(MIN_TIME_S, 2.0))["median_step_s"]
        train_flops = flops * (1 + len(argnums))
        rows.append({"side": side, "cin": cin, "cout": cout, "forward_ms": t_f * 1e3,
                     "forward_gflops": flops / t_f / 1e9, "train_ms": t_g * 1e3,
                     "train_gflops": train_flops / t_g / 1e9})
    return {"conv": conv, "batch": batch, "layers": rows}


LIGHT_CONV_SHAPES = ((32, 4, 24), (16, 24, 48), (8, 48, 96), (4, 96, 128))   # O input, 64x64


def kernel_grads(model: str = "light", batch: int = 0, warmup: int = 2, steps: int = 7) -> dict:
    """Per layer of `model`, ms of a 3x3 convolution's weight gradient by each of
    ferjax.models.conv.KERNEL_GRADS (the methods timed in turn, `steps` rounds, medians), beside
    the one `kernel_grad_method` picks for that layer (what training runs)."""
    from ferjax.models.conv import KERNEL_GRADS, kernel_grad_method
    shapes = LIGHT_CONV_SHAPES if model == "light" else VGG13_CONV_SHAPES
    batch = batch or (64 if model == "light" else 32)
    rows = []
    for side, cin, cout in shapes:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((batch, side, side, cin), np.float32))
        g = jnp.asarray(rng.standard_normal((batch, side, side, cout), np.float32))
        fns = {name: jax.jit(f) for name, f in KERNEL_GRADS.items()}
        for f in fns.values():
            for _ in range(warmup):
                jax.block_until_ready(f(x, g))
        times = {name: [] for name in fns}
        for _ in range(steps):
            for name, f in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(x, g))
                times[name].append(time.perf_counter() - t0)
        ms = {name: 1e3 * float(np.median(t)) for name, t in times.items()}
        rows.append({"side": side, "cin": cin, "cout": cout, "ms": ms,
                     "picked": kernel_grad_method(side, side, cin), "fastest": min(ms, key=ms.get)})
    return {"model": model, "batch": batch, "layers": rows}


def _winograd_f2x2_3x3(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """3x3 SAME convolution by Winograd's F(2x2, 3x3) in jnp (Lavin & Gray 2016): 4x4 input
    tiles at stride 2 transformed by B, 16 batched (pixels x Cin) @ (Cin x Cout) products
    against G k G^T, 2x2 outputs back by A: 2.25x fewer multiplies than the direct form.
    A candidate for VGG13's convolutions, measured by `conv_forms` and not kept."""
    def bt(r0, r1, r2, r3):   # B^T's rows applied along one axis
        return [r0 - r2, r1 + r2, r2 - r1, r1 - r3]

    n, h, w, c = x.shape
    xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    rows = bt(*[xp[:, i:i + h:2] for i in range(4)])
    v = jnp.stack([t for r in rows for t in bt(*[r[:, :, j:j + w:2] for j in range(4)])])
    g = jnp.asarray([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], x.dtype)
    u = jnp.einsum("ai,ijck,bj->abck", g, kernel, g).reshape(16, c, -1)
    m = jnp.einsum("tpc,tck->tpk", v.reshape(16, -1, c), u).reshape(4, 4, n, h // 2, w // 2, -1)
    o = [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]                     # A^T along the rows
    y = jnp.stack([jnp.stack([r[0] + r[1] + r[2], r[1] - r[2] - r[3]]) for r in o])
    return y.transpose(2, 3, 0, 4, 1, 5).reshape(n, h, w, -1)


def conv_forms(batch: int = 32, shapes=((64, 64, 64),), rounds: int = 3, steps: int = 5) -> dict:
    """ms of a 3x3 convolution, forward and forward + both gradients, by ferjax's default "xla"
    conv and by Winograd F(2x2, 3x3) (`_winograd_f2x2_3x3`, gradients by autodiff), alternated
    `rounds` times, medians of `steps`; `max_rel_error` of Winograd's output."""
    from ferjax.models.conv import conv3x3_xla
    forms = {"xla": conv3x3_xla, "winograd": _winograd_f2x2_3x3}
    rows = []
    for side, cin, cout in shapes:
        x, k, r = _conv_layer_inputs(batch, side, cin, cout)
        # r an argument, not a constant XLA could fold Winograd's output transform into
        jitted = {name: (jax.jit(f), jax.jit(jax.grad(lambda x, k, r, f=f: jnp.sum(f(x, k) * r), argnums=(0, 1))))
                  for name, f in forms.items()}
        ref, got = jitted["xla"][0](x, k), jitted["winograd"][0](x, k)
        ms = {f"{name}_{part}": [] for name in forms for part in ("forward", "train")}
        for _ in range(rounds):
            for name, (fwd, grad) in jitted.items():
                for part, f, args in (("forward", fwd, (x, k)), ("train", grad, (x, k, r))):
                    t = time_steps(lambda: jax.block_until_ready(f(*args)), 1, steps, min_time=0.0)
                    ms[f"{name}_{part}"].append(1e3 * t["median_step_s"])
        rows.append({"side": side, "cin": cin, "cout": cout, "ms": ms,
                     "max_rel_error": float(jnp.max(jnp.abs(got - ref)) / jnp.max(jnp.abs(ref)))})
    return {"batch": batch, "layers": rows}


def sweep_forms(model: str = "light", batch: int = 64, k: int = 4, warmup: int = 2, steps: int = 5,
                image_size: int = 64, features: str = "O") -> dict:
    """Images/s per configuration of a sweep of K runs by two one-step forms: ferjax's vmapped
    step, and `jax.lax.map` over the stacked runs (XLA runs them one after another in a loop,
    each with the single-run step's ops). A candidate for the sweep, not kept."""
    import functools
    from ferjax.train.step import train_step
    out = {"vmap": train(model, batch, features, k=k, warmup=warmup, steps=steps,
                         image_size=image_size, together=1)["images_per_s_per_config"]}
    cfgs = run_configs(model, batch, features, default_conv(), image_size, k)
    placement = Placement.create(k, batch)
    one = functools.partial(train_step, sample_targets=False, label_smoothing=0.0)
    step = jax.jit(lambda state, b: jax.lax.map(lambda s: one(s, b), state), donate_argnums=0)
    holder = {"state": placement.put_state(create_states(cfgs, STEPS_PER_EPOCH))}
    data = placement.put_batch(random_batch(batch, num_channels(features), image_size))

    def one_step():
        holder["state"], metrics = step(holder["state"], data)
        jax.block_until_ready((holder["state"], metrics))

    out["map"] = rate(time_steps(one_step, warmup, steps, min_time=0.0), batch)
    return {"model": model, "batch": batch, "k": k, "images_per_s_per_config": out}


FUNCTIONS = {"conv_layers": conv_layers, "kernel_grads": kernel_grads, "conv_forms": conv_forms, "sweep_forms": sweep_forms, "train": train, "sequential": sequential, "infer": infer, "ceiling": ceiling,
             "flops": flops, "probe": probe, "pipeline": pipeline, "pipeline_fed": pipeline_fed,
             "loop": loop}

if __name__ == "__main__":   # a one-off: python benchmarks/bench_ferjax.py train model=light
    import json
    kw = dict(a.split("=", 1) for a in sys.argv[2:])
    kw = {k: (int(v) if v.isdigit() else v) for k, v in kw.items()}
    print(json.dumps(FUNCTIONS[sys.argv[1]](**kw), indent=1, default=str))
    os._exit(0)
