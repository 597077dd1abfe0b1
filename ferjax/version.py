"""The code a result came from, stored beside it: ferjax's version, the git commit of the
checkout it ran from (with "+changes" when tracked files differed from it), and JAX's."""
from __future__ import annotations

import subprocess
from importlib import metadata
from pathlib import Path

from ferjax import __version__

_REPO = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(_REPO), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_commit() -> str | None:
    """The checkout's commit, or None when ferjax was not run from a git checkout."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    if commit and _git("status", "--porcelain", "--untracked-files=no"):
        commit += "+changes"
    return commit


def code_version() -> dict:
    def installed(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None
    return {"ferjax": __version__, "git": git_commit(), "jax": installed("jax"),
            "jaxlib": installed("jaxlib"), "flax": installed("flax")}
