"""One benchmark function in its own process: the worker's side and the parent's run_job."""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from benchmarks.common import load_average, peak_rss_mb
from benchmarks.plan import MODULES, PEER_MODULES
from ferjax.devices import huge_page_env

REPO = Path(__file__).resolve().parents[1]
ENTRY = Path(__file__).resolve().with_name("run.py")   # re-invoked with --worker


def worker(module: str, func: str, kwargs: dict, result_path: str) -> None:
    """Runs in the child: one benchmark function, its result and peak RSS to result_path."""
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
    Path(result_path).write_text(json.dumps(out, default=jsonable))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)   # skip TF/XLA teardown


def jsonable(x):
    try:
        return float(x)
    except Exception:   # noqa: BLE001
        return str(x)


def run_job(framework: str, func: str, kwargs: dict, timeout: float, log=None,
            pythonpath: tuple[str, ...] = (), devices: int | None = None,
            min_time: float = 0.0) -> dict:
    """One worker process; returns its record with the peak RSS the kernel saw (wait4).
    devices: split the host CPU into that many XLA devices (ferjax then shards the batch).
    Every system's worker gets the malloc of ferjax's entry points (glibc on transparent huge
    pages, ferjax.devices.huge_page_env): the peers ran faster with it too."""
    path = [*pythonpath, str(REPO), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND="tensorflow",
               PYTHONPATH=os.pathsep.join(filter(None, path)), FERJAX_BENCH_MIN_TIME=str(min_time))
    env = huge_page_env(env) or env
    if devices:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={devices}").strip()
    load = load_average()
    with tempfile.TemporaryDirectory(prefix="ferjax-bench-") as d:
        result, errlog = Path(d) / "result.json", Path(d) / "log.txt"
        cmd = [sys.executable, str(ENTRY), "--worker", MODULES[framework], func,
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
