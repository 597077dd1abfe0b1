import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ferjax.devices import use_eigen_convolutions  # noqa: E402

use_eigen_convolutions()   # as ferjax's models ask for, before JAX starts

import jax  # noqa: E402

# Start JAX now, with the devices the environment gives (one CPU device by default), so that a
# test calling an entry point (which would split the host into one device per core if JAX had
# not started) cannot change the device count for the tests after it.
jax.devices()

SHARED_FERPLUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ferplus"
REAL_FERPLUS = Path(os.environ.get("FERJAX_FERPLUS", SHARED_FERPLUS))


@pytest.fixture(scope="session")
def real_ferplus() -> Path:
    """The real FERPlus copy (FERJAX_FERPLUS, default ../shared/data/ferplus); skips when absent."""
    path = REAL_FERPLUS
    if not (path / "FER2013Train").is_dir():
        pytest.skip(f"real FERPlus data not found at {path}")
    return path
