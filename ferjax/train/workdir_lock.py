"""One training process per workdir: a second one started on the same folder (a repeated
command, a second shell) would interleave checkpoints and metrics with the first; it fails at
once instead, naming the process that holds the folder. The lock is the kernel's (flock), so
it is released however its holder ends, a kill included."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

LOCK_NAME = ".training.lock"


class WorkdirBusyError(RuntimeError):
    pass


@contextlib.contextmanager
def workdir_lock(workdir: Path, enabled: bool = True):
    if not enabled:
        yield
        return
    import fcntl
    f = open(Path(workdir) / LOCK_NAME, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise WorkdirBusyError(f"{workdir} is being trained by {holder}; wait for it to end, "
                                   f"or give another --workdir / --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {socket.gethostname()}")
        f.flush()
        yield
    finally:
        f.close()                  # closing releases the flock
