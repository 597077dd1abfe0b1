"""Several processes or hosts: JAX's own `jax.distributed` joins them into one global mesh.

Every process runs the same command; process 0 also hosts JAX's coordinator. After
`jax.distributed.initialize`, `jax.devices()` lists every process's devices, so the same
Placement (mesh ('runs', 'data')) spans hosts: one run trains data-parallel (each process
feeds only its own shard of each batch), the runs of a sweep spread over processes where the
placement spreads them over devices. XLA runs the cross-process collectives (gloo on CPU,
JAX's default in 0.10; NCCL on GPU). Nothing here coordinates on its own.

The settings come from flags (--coordinator-address, --num-processes, --process-id), else
FERJAX_COORDINATOR / FERJAX_NUM_PROCESSES / FERJAX_PROCESS_ID, else JAX's own environment
(JAX_COORDINATOR_ADDRESS) and cluster auto-detection (SLURM, Open MPI, ...) with
--distributed. Call `setup` at the top of an entry point, before JAX's first operation.

A dead process must not leave the others waiting: the coordinator drops a process that
stops sending heartbeats (--heartbeat-timeout) and stops every other one, a collective on a
dead peer fails, and XLA's CPU collective timeouts are bounded (--collective-timeout, 300 s
by default, against the hour a single loaded host gets in ferjax.devices). A process that
raises exits at once (without JAX's exit-time shutdown barrier), so the others fail fast.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import traceback

from ferjax.devices import DEFAULT_CPU_DEVICES, use_cpu_cores

ENV = {"coordinator_address": "FERJAX_COORDINATOR", "num_processes": "FERJAX_NUM_PROCESSES",
       "process_id": "FERJAX_PROCESS_ID"}
DEFAULT_COLLECTIVE_TIMEOUT = 300      # seconds a device waits for its peers in one collective
DEFAULT_HEARTBEAT_TIMEOUT = 100       # seconds without a heartbeat before a process is dead
DEFAULT_INIT_TIMEOUT = 300            # seconds to wait for every process to join


@dataclasses.dataclass(frozen=True)
class Settings:
    coordinator_address: str | None = None
    num_processes: int | None = None
    process_id: int | None = None
    auto: bool = False                # --distributed: let JAX detect what is not given
    init_timeout: int = DEFAULT_INIT_TIMEOUT
    heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT
    collective_timeout: int = DEFAULT_COLLECTIVE_TIMEOUT

    @property
    def enabled(self) -> bool:
        given = (self.coordinator_address, self.num_processes, self.process_id)
        return self.auto or any(v is not None for v in given)


def add_arguments(parser) -> None:
    g = parser.add_argument_group("several processes or hosts (jax.distributed)")
    g.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                   help="process 0's address, the same for every process (env FERJAX_COORDINATOR)")
    g.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="processes in the job (env FERJAX_NUM_PROCESSES)")
    g.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="this process, 0..N-1; 0 hosts the coordinator (env FERJAX_PROCESS_ID)")
    g.add_argument("--distributed", action="store_true",
                   help="join a multi-process job even without the settings above: JAX reads "
                        "JAX_COORDINATOR_ADDRESS or detects the cluster (SLURM, Open MPI, ...)")
    g.add_argument("--init-timeout", type=int, default=None, metavar="S",
                   help=f"seconds to wait for every process to join (default {DEFAULT_INIT_TIMEOUT}; "
                        "env FERJAX_INIT_TIMEOUT)")
    g.add_argument("--heartbeat-timeout", type=int, default=None, metavar="S",
                   help="seconds without a heartbeat before a process counts as dead and the job "
                        f"stops (default {DEFAULT_HEARTBEAT_TIMEOUT}; env FERJAX_HEARTBEAT_TIMEOUT)")
    g.add_argument("--collective-timeout", type=int, default=None, metavar="S",
                   help="seconds a device waits for its peers in one collective before the process "
                        f"fails (default {DEFAULT_COLLECTIVE_TIMEOUT}; env FERJAX_COLLECTIVE_TIMEOUT)")


def settings_from(args) -> Settings:
    """Flags first, then FERJAX_* environment variables; unset stays None (JAX may detect it)."""
    def pick(name, env, cast, default=None):
        value = getattr(args, name, None)
        if value is None and os.environ.get(env):
            try:
                value = cast(os.environ[env])
            except ValueError:
                raise ValueError(f"{env}={os.environ[env]!r} is not a valid {name}") from None
        return default if value is None else value

    s = Settings(
        coordinator_address=pick("coordinator_address", ENV["coordinator_address"], str),
        num_processes=pick("num_processes", ENV["num_processes"], int),
        process_id=pick("process_id", ENV["process_id"], int),
        auto=bool(getattr(args, "distributed", False)),
        init_timeout=pick("init_timeout", "FERJAX_INIT_TIMEOUT", int, DEFAULT_INIT_TIMEOUT),
        heartbeat_timeout=pick("heartbeat_timeout", "FERJAX_HEARTBEAT_TIMEOUT", int,
                               DEFAULT_HEARTBEAT_TIMEOUT),
        collective_timeout=pick("collective_timeout", "FERJAX_COLLECTIVE_TIMEOUT", int,
                                DEFAULT_COLLECTIVE_TIMEOUT))
    if s.num_processes is not None and s.num_processes < 1:
        raise ValueError(f"--num-processes must be 1 or more, not {s.num_processes}")
    if s.process_id is not None and s.num_processes is not None and not 0 <= s.process_id < s.num_processes:
        raise ValueError(f"--process-id must be in 0..{s.num_processes - 1}, not {s.process_id}")
    for name in ("init_timeout", "heartbeat_timeout", "collective_timeout"):
        if getattr(s, name) <= 0:
            raise ValueError(f"--{name.replace('_', '-')} must be positive, not {getattr(s, name)}")
    return s


def setup(args) -> bool:
    """Before JAX's first operation: host CPU devices, then (when asked) join the multi-process
    job. Returns whether this process is one of several."""
    s = settings_from(args)
    if s.enabled:
        _bounded_collectives(s.collective_timeout)     # before use_cpu_cores adds its hour
    use_cpu_cores(getattr(args, "cpu_devices", DEFAULT_CPU_DEVICES))
    if not s.enabled:
        return False
    import jax
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    jax.distributed.initialize(coordinator_address=s.coordinator_address,
                               num_processes=s.num_processes, process_id=s.process_id,
                               initialization_timeout=s.init_timeout,
                               heartbeat_timeout_seconds=s.heartbeat_timeout)
    sys.excepthook = _exit_at_once
    return jax.process_count() > 1


def _bounded_collectives(seconds: int) -> None:
    from ferjax.devices import COLLECTIVE_FLAGS
    flags = os.environ.get("XLA_FLAGS", "")
    extra = [f"{f.split('=')[0]}={seconds}" for f in COLLECTIVE_FLAGS if f.split("=")[0] not in flags]
    os.environ["XLA_FLAGS"] = " ".join([flags, *extra]).strip()


def _exit_at_once(kind, value, tb) -> None:
    """An uncaught error in one process of several: print it and leave at once. The normal
    exit would first wait in jax.distributed's shutdown barrier for the other processes, which
    are themselves waiting for this one in a collective."""
    import jax
    sys.stderr.write(f"ferjax: process {jax.process_index()} of {jax.process_count()} failed; "
                     "the other processes stop when they miss it\n")
    traceback.print_exception(kind, value, tb)
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)


def fail_fast(code: int = 1) -> None:
    """Leave this process now with `code` (for errors the CLI reports itself)."""
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code)


def is_primary() -> bool:
    """Process 0: the one that writes metrics, summaries, tables and figures."""
    import jax
    return jax.process_index() == 0
