"""Host CPU devices: one XLA CPU device unless the user asks for more, Eigen's
convolutions (`use_eigen_convolutions`, asked for by ferjax.models.conv), for inference
one malloc arena (`share_malloc_arena`, asked for by the inference commands), for
training the freed heap handed back after compiling (`release_freed_memory`), and for every
command glibc's malloc on transparent huge pages (`restart_with_huge_pages`).

XLA:CPU can leave a core idle on these small convolutions, so two devices with the batch
split between them (data parallel, by the same Placement that spreads a sweep over GPUs;
`--cpu-devices 0`) can train the light model faster (README, "Fast on a CPU"). It is
not the default: with two host devices a gradient all-reduce can wait forever for the other
device (XLA: "This thread has been waiting for all reduce ... may be stuck"), seen on a
loaded machine and, on 2026-12-01, in the main job's first epoch on an idle one.
This only takes effect before JAX runs its first operation, hence a call at the top of
each entry point; it never touches GPU/TPU devices.
"""
from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


DEFAULT_CPU_DEVICES = 1


def use_cpu_cores(devices: int = DEFAULT_CPU_DEVICES) -> int | None:
    """Split the host CPU into `devices` XLA devices (0: one per usable core). Returns the
    count set, or None when left as it was: the user set the count in XLA_FLAGS, or JAX has
    already run (a warning says so if a count was asked for explicitly)."""
    if devices < 0:
        raise ValueError(f"--cpu-devices must be 0 (one per core) or more, not {devices}")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    import jax    # here, not at module level: `ferjax --help` and data-info need no JAX
    n = devices or usable_cores()
    try:
        jax.config.update("jax_num_cpu_devices", n)
        if n > 1:
            _patient_collectives()
    except RuntimeError:
        if devices and n != jax.local_device_count("cpu"):
            warnings.warn(f"JAX already started with {jax.local_device_count('cpu')} CPU device(s); "
                          f"--cpu-devices {n} ignored", stacklevel=2)
        return None
    return n


# XLA:CPU aborts the process when one device reaches a cross-device reduction 40 s before
# the other; on a host loaded by other work the devices' threads can fall that far apart
# (seen here: a sweep killed while another JAX process ran). Wait instead, up to an hour.
COLLECTIVE_FLAGS = ("--xla_cpu_collective_call_terminate_timeout_seconds=3600",
                    "--xla_cpu_collective_timeout_seconds=3600")


def _patient_collectives() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f for f in COLLECTIVE_FLAGS if f.split("=")[0] not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


# jaxlib 0.10's XLA:CPU runs convolutions through YNNPACK; its Eigen convolutions, this flag,
# train both models' 3x3 layers faster (benchmarks/README.md, "Convolution library").
# An unknown flag aborts XLA, so only jaxlib versions measured to know it get it.
EIGEN_CONVOLUTIONS_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
_YNN_FUSION_OPTION = EIGEN_CONVOLUTIONS_FLAG.split("=")[0]


def use_eigen_convolutions() -> bool:
    """Ask XLA:CPU for Eigen's convolutions instead of YNNPACK's, if JAX has not started and the
    user's XLA_FLAGS do not choose. Returns whether this process's convolutions are Eigen's."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _YNN_FUSION_OPTION in flags:
        return EIGEN_CONVOLUTIONS_FLAG in flags
    import jaxlib
    from jax._src import xla_bridge
    if tuple(int(p) for p in jaxlib.__version__.split(".")[:2]) < (0, 10) \
            or xla_bridge.backends_are_initialized():
        return False
    os.environ["XLA_FLAGS"] = " ".join([flags, EIGEN_CONVOLUTIONS_FLAG]).strip()
    return True


def add_argument(parser) -> None:
    parser.add_argument("--cpu-devices", type=int, default=DEFAULT_CPU_DEVICES, metavar="N",
                        help="split the host CPU into N XLA devices, the batch split between "
                             f"them (default {DEFAULT_CPU_DEVICES}; 0: one per core, faster on "
                             "small models but see the README's known issue)")


# glibc gives each thread that allocates its own malloc arena, and XLA:CPU's worker threads
# each keep their freed convolution buffers in theirs, so inference held far more memory than
# its buffers need. One arena, which never returns its top to the OS (no trim) and never maps
# the buffers these models allocate (under 32 MB) on their own, lets the threads reuse each
# other's buffers without a page fault per pass (benchmarks/README.md, "Inference memory").
# Only the inference commands ask for it: the training step ran markedly slower with it.
# The user's MALLOC_* variables win; other C libraries are left alone.
MALLOC_OPTIONS = {"MALLOC_ARENA_MAX": (-8, 1), "MALLOC_TRIM_THRESHOLD_": (-1, 1 << 30),
                  "MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20)}   # env name: (mallopt param, value)


def share_malloc_arena() -> bool:
    """Set MALLOC_OPTIONS with glibc's mallopt, before JAX starts its threads. Returns whether
    they were set (not on other C libraries, nor when the environment sets any of them, nor
    once JAX has started: its threads have their arenas, and the process is someone else's)."""
    if any(name in os.environ for name in MALLOC_OPTIONS):
        return False
    if "jax" in sys.modules:
        from jax._src import xla_bridge
        if xla_bridge.backends_are_initialized():
            return False
    libc = _glibc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_OPTIONS.values())


def release_freed_memory() -> bool:
    """Return the free pages of every malloc arena to the OS (glibc's malloc_trim). Compiling
    leaves much memory freed in the arenas of the threads that compiled, which the steps do
    not reuse; the training loop calls this once the states are built, once the step has
    compiled and after the first evaluation (benchmarks/README.md, "Training memory").
    Returns whether it ran."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


# glibc's malloc can ask the kernel for transparent huge pages for its heaps and mapped
# chunks. XLA:CPU's buffers are large and short-lived: on 4 KiB pages a vmapped sweep
# faults them in again every step and misses the TLB, and ran markedly slower than on huge
# pages (benchmarks/README.md, "Huge pages"). glibc reads its tunables only when
# a process starts, so the entry points start the program again, once, with the tunable set.
HUGE_PAGE_TUNABLE = "glibc.malloc.hugetlb=1"
HUGE_PAGES_ENV = "FERJAX_HUGE_PAGES"      # "0": leave malloc as it is
THP_SETTING = "/sys/kernel/mm/transparent_hugepage/enabled"


def huge_page_env(environ=None) -> dict[str, str] | None:
    """`environ` (default os.environ) with glibc's malloc on transparent huge pages, or None
    when it has nothing to add: not Linux with glibc 2.35 or later, huge pages off in the
    kernel, the tunable (or any glibc.malloc.hugetlb) already set, or FERJAX_HUGE_PAGES=0."""
    env = dict(os.environ if environ is None else environ)
    tunables = env.get("GLIBC_TUNABLES", "")
    if (not sys.platform.startswith("linux") or env.get(HUGE_PAGES_ENV) == "0"
            or "glibc.malloc.hugetlb" in tunables or not _glibc_at_least(2, 35)):
        return None
    try:
        if "[never]" in Path(THP_SETTING).read_text():
            return None
    except OSError:
        return None
    env["GLIBC_TUNABLES"] = ":".join(filter(None, [tunables, HUGE_PAGE_TUNABLE]))
    return env


def restart_with_huge_pages() -> None:
    """Start this program again with `huge_page_env`, before it has done anything (call it
    first in an entry point; never returns when it restarts). A no-op when there is nothing
    to add or the command line cannot be repeated (an interactive or embedded interpreter)."""
    env = huge_page_env()
    argv = getattr(sys, "orig_argv", None)
    if env is None or not argv or not sys.executable or sys.flags.interactive:
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], env)
    except OSError:      # the interpreter cannot be started again: go on as it is
        return


def _glibc_at_least(major: int, minor: int) -> bool:
    libc = _glibc()
    if libc is None:
        return False
    import ctypes
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    try:
        have = tuple(int(x) for x in libc.gnu_get_libc_version().decode().split(".")[:2])
    except ValueError:
        return False
    return have >= (major, minor)


def _glibc():
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version
        libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return None
    return libc
