"""Helpers shared by the benchmark workers: step timing, peak memory, machine facts.

Nothing here imports JAX, PyTorch or TensorFlow: each worker process loads only the
framework it measures.
"""
from __future__ import annotations

import os
import platform
import resource
import statistics
import time
from typing import Callable

import numpy as np

from ferjax.classes import NUM_CLASSES      # light modules: no JAX, no TF
from ferjax.devices import usable_cores

MIN_TIME_S = float(os.environ.get("FERJAX_BENCH_MIN_TIME", "0"))
MAX_STEPS = 500


# The study's architectures, checked in each peer by their trainable parameter count at 64x64
# with one input channel (ferjax/models: tests/test_models.py asserts the same numbers).
VGG13_PARAMS_1CH = 8_757_704
LIGHT_PARAMS_1CH = 349_520     # the default ("pooled") layer table, with its batch-norm scales and offsets


def time_steps(step: Callable[[], object], warmup: int, steps: int,
               min_time: float | None = None, after_first: Callable[[], object] | None = None) -> dict:
    """Run `step` (which must return only when its work is done) warmup + steps times, and
    more timed steps while they add up to less than `min_time` seconds (default: the
    FERJAX_BENCH_MIN_TIME environment variable, which run.py sets per mode), so a fast step
    is timed many times and a slow one `steps` times.

    The first call includes compilation/tracing; it is reported as `first_step_s`, and
    `after_first` runs after it. The throughput statistic is the median of the timed calls
    that follow the warm-up.
    """
    if steps < 1 or warmup < 1:
        raise ValueError("need at least one warm-up step and one timed step")
    min_time = MIN_TIME_S if min_time is None else min_time
    t = time.perf_counter()
    step()
    first = time.perf_counter() - t
    if after_first is not None:
        after_first()
    for _ in range(warmup - 1):
        step()
    times: list[float] = []
    while len(times) < steps or (sum(times) < min_time and len(times) < MAX_STEPS):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {"first_step_s": first, "step_times_s": times,
            "median_step_s": statistics.median(times), "warmup": warmup, "steps": len(times)}


def rate(timing: dict, images_per_step: int) -> float:
    return images_per_step / timing["median_step_s"]


def peak_rss_mb() -> float:
    """High-water mark of this process's resident set (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def random_batch(batch: int, channels: int, image_size: int, seed: int = 0) -> dict:
    """The same resident batch every framework trains on: N(0,1) images, one-hot targets."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, batch).astype(np.int32)
    return {"image": rng.standard_normal((batch, image_size, image_size, channels), dtype=np.float32),
            "target": np.eye(NUM_CLASSES, dtype=np.float32)[labels], "label": labels}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cores() -> dict:
    return {"logical": os.cpu_count(), "usable": usable_cores()}


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def hlo_index(hlo_text: str) -> dict[str, dict]:
    """Instruction name -> {"shape", "source"} from an optimised HLO module's text, "source"
    being the JAX op that produced it (metadata op_name, shortened). Trace events are named
    after these instructions, so this says what each fusion in a profile computes."""
    import re
    out = {}
    line_re = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+) = (.*)$")
    for line in hlo_text.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        name, rest = m.groups()
        shape = re.match(r"\(?([a-z]+\d*\[[^\]]*\])", rest)
        src = re.search(r'op_name="([^"]*)"', rest)
        source = src.group(1) if src else ""
        for prefix in ("jit(train_step)/", "jit(<lambda>)/", "jit("):
            if source.startswith(prefix):
                source = source[len(prefix):]
                break
        out[name] = {"shape": shape.group(1) if shape else "", "source": source[-110:]}
    return out


def cpu_busy_fraction(seconds: float = 2.0) -> float | None:
    """Share of all cores' time spent busy (by anything) over the next `seconds` (/proc/stat):
    a direct check that the machine is idle, unlike the slowly decaying load average."""
    def sample():
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)   # idle + iowait
        return sum(fields), idle
    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, 1.0 - (i1 - i0) / (t1 - t0)) if t1 > t0 else None


def top_ops_from_trace(trace_dir: str, steps: int, top: int = 15, hlo_text: str | None = None) -> dict:
    """Aggregate a jax.profiler trace by op name: ms per step, calls per step, share of busy time.

    Only complete ('X') events of XLA's compute threads are counted (its HLO ops and fusions,
    named as in the optimised HLO); Python-thread events and runtime bookkeeping (names with
    '::', '$...', 'PjitFunction') are dropped, except, given `hlo_text`, an event named after one
    of its instructions on whichever thread ran it (a CPU client may run a program on the
    calling thread). An op XLA runs asynchronously (Eigen's convolutions) leaves a short event
    where it starts and an 'end: <op>' event where it finishes: it counts from the one to the
    other.
    """
    import collections
    import glob
    import gzip
    import json

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True))
    if not files:
        return {"error": "no trace file written"}
    events = json.load(gzip.open(files[-1]))["traceEvents"]
    # thread names: keep only XLA's compute threads when they can be told apart
    tids = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            tids[(e.get("pid"), e.get("tid"))] = e.get("args", {}).get("name", "")
    index = hlo_index(hlo_text) if hlo_text else {}
    total, calls = collections.Counter(), collections.Counter()
    started = collections.defaultdict(collections.deque)    # (pid, op) -> its events not yet ended
    for e in sorted((e for e in events if e.get("ph") == "X"), key=lambda e: e.get("ts", 0)):
        name = e.get("name", "")
        if name.startswith("end: "):
            waiting = started.get((e.get("pid"), name[5:]))
            if waiting:
                begun = waiting.popleft()
                span = e.get("ts", 0) + e.get("dur", 0) - begun.get("ts", 0)
                total[name[5:]] += max(0, span - begun.get("dur", 0))
            continue
        if name.startswith("$") or "::" in name or "PjitFunction" in name \
                or (tids.get((e.get("pid"), e.get("tid")), "") == "python" and name not in index):
            continue
        total[name] += e.get("dur", 0)
        calls[name] += 1
        started[(e.get("pid"), name)].append(e)
    busy = sum(total.values()) or 1
    ops = [{"op": k[:160], "ms_per_step": v / steps / 1000.0, "calls_per_step": calls[k] / steps,
            "share": v / busy, **index.get(k, {})} for k, v in total.most_common(top)]
    return {"busy_ms_per_step": busy / steps / 1000.0, "top_ops": ops,
            "threads": sorted(set(tids.values()))[:20]}
