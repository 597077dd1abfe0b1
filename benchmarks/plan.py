"""The suite's plan: what is measured (workloads, modes, targets, peers) and the report's notes."""

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
                 fed_images=5120, loop_per_class=3500, profile_steps=3, timeout=3600, batch_cap=None,
                 skip_convs=(), conv_layers=True, min_time=10.0, rounds=3),
    # A few minutes: one workload per target kind, ferjax's "lax" path left out.
    "quick": dict(workloads=["vgg13_train_b32", "light_train_b64", "light_infer_b256",
                             "sweep4_light"],
                  warmup=2, steps=3, ceiling_n=(2048,), pipeline_images=2560,
                  fed_images=1920, loop_per_class=3500, profile_steps=2, timeout=1200, batch_cap=None,
                  skip_convs=("lax",), conv_layers=False, min_time=3.0, rounds=3),
    # Only checks that every path runs: one step each, batches capped at 8.
    "smoke": dict(workloads=["vgg13_train_b32", "light_train_b64", "light_train_b64_osl",
                             "vgg13_infer_b256", "light_infer_b256", "sweep4_light"],
                  warmup=1, steps=1, ceiling_n=(256,), pipeline_images=256,
                  fed_images=256, loop_per_class=8, profile_steps=1, timeout=900, batch_cap=8,
                  skip_convs=(), conv_layers=True, min_time=0.0, rounds=1),
}

# task -> (the peer the ratio is taken against, the ratio to reach)
TARGETS = {"train": ("torch", 1.1), "infer": ("best peer", 1.2), "sweep": ("sequential", 1.0)}
# the training loop against its own step: an epoch within 1.15x its steps' time
LOOP_TARGET = 1 / 1.15

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
    "Sweep: K configurations (different lambda and seed, same batches) stepped as ferjax's "
    "training loop steps a group (ferjax.train.apart: on a CPU host, each run its own program, "
    "the runs dealt round the devices; elsewhere one vmapped step; JSON keys keep the name "
    "'vmapped'), against the same K trained one after another with the single-run step; "
    "images/s per configuration. The baseline is the faster sequential conv implementation, "
    "so the group is credited only with what it adds.",
    "Inference targets are against the best peer; training targets against PyTorch.",
    "Rounds: every kept rate is measured once per round (ferjax's default, each peer's variants, "
    "the systems taking turns to go first; a sweep's group and sequential forms at its target "
    "K), ferjax's other variants in the first round only. A rate is the median of its rounds "
    "and a ratio the median of the per-round ratios (two systems measured minutes apart, so "
    "that the machine's drift moves both); [min-max] gives the spread.",
    "Every worker, of every system, runs with glibc's malloc on transparent huge pages "
    "(GLIBC_TUNABLES=glibc.malloc.hugetlb=1), which ferjax's entry points set by starting "
    "again (ferjax.devices.restart_with_huge_pages): measured side by side, PyTorch and Keras "
    "ran faster with it as well (benchmarks/README.md, \"Huge pages\").",
    "'<conv>+<n>dev': the same step with the host CPU split into n XLA devices "
    "(XLA_FLAGS=--xla_force_host_platform_device_count=n): ferjax's Placement then shards the "
    "batch over them (data parallel; in a sweep, the K runs, or with the 'xla' conv the "
    "batch again). XLA:CPU keeps only about one "
    "core busy on these models with one device; n devices run n streams of work at once.",
]
