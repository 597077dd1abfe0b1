"""Checkpoints that restore anywhere, runs that extend, and kills at any instant (issue #12)."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
from ferjax.data.synthetic import make_synthetic
from ferjax.train import checkpoint
from ferjax.train.group import create_states
from ferjax.train.loop import train
from ferjax.train.state import state_arrays

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(per_class=24, seed=0)


def cfg_for(epochs, **kw):
    return RunConfig(data=DataConfig(features="O-S", batch_size=32, synthetic_per_class=24),
                     model=ModelConfig(name="light"), loss=LossConfig(lam=0.1), epochs=epochs,
                     seed=0, **kw)


def latest_arrays(workdir):
    like = state_arrays(create_states([cfg_for(1)], 1))
    return checkpoint.restore(Path(workdir) / "latest", like)


def quiet(**kw):
    return dict(progress=False, log=lambda *_: None, **kw)


def test_a_finished_paper_run_extends_to_what_one_longer_run_gives(tmp_path, tiny):
    train(cfg_for(2), tmp_path / "once", dataset=tiny, **quiet())
    train(cfg_for(1), tmp_path / "twice", dataset=tiny, **quiet())
    train(cfg_for(2), tmp_path / "twice", dataset=tiny, **quiet())        # extended by one epoch
    (a, ma), (b, mb) = latest_arrays(tmp_path / "once"), latest_arrays(tmp_path / "twice")
    assert ma["epoch"] == mb["epoch"] == 2
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)
    lines = [json.loads(x) for x in (tmp_path / "twice" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2]


def test_a_different_configuration_is_named_field_by_field(tmp_path, tiny):
    train(cfg_for(1), tmp_path, dataset=tiny, **quiet())
    other = cfg_for(1).replace(seed=3, loss=LossConfig(lam=0.5))
    with pytest.raises(ValueError, match=r"loss\.lam: saved 0\.1, asked 0\.5.*seed: saved 0, asked 3"):
        train(other, tmp_path, dataset=tiny, **quiet())
    from ferjax.config import OptimConfig
    onecycle = OptimConfig(schedule="onecycle")
    train(cfg_for(1, optim=onecycle), tmp_path / "oc", dataset=tiny, **quiet())
    with pytest.raises(ValueError, match="epochs: saved 1, asked 2.*one-cycle"):
        train(cfg_for(2, optim=onecycle), tmp_path / "oc", dataset=tiny, **quiet())


TRAIN = textwrap.dedent("""
    import sys
    from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
    from ferjax.train.loop import train
    cfg = RunConfig(data=DataConfig(features="O-S", batch_size=32, synthetic_per_class=24),
                    model=ModelConfig(name="light"), loss=LossConfig(lam=0.1), epochs=int(sys.argv[2]), seed=0)
    train(cfg, sys.argv[1], progress=False, log=lambda *_: None)
    print("TRAINED")
""")


def _env(devices: int = 1) -> dict:
    return dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
                XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _run(workdir, epochs, devices=1):
    out = subprocess.run([sys.executable, "-c", TRAIN, str(workdir), str(epochs)], env=_env(devices),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0 and "TRAINED" in out.stdout, out.stderr[-2000:]


def test_a_checkpoint_from_two_devices_evaluates_predicts_and_resumes_on_one(tmp_path, tiny):
    _run(tmp_path / "w", 1, devices=2)                       # saved from a 2-device layout
    from ferjax.evaluate import evaluate
    from ferjax.predict.predictor import Predictor
    result = evaluate(tmp_path / "w", split="valid")         # this process: 1 device
    assert result.scores.num_images > 0 and 0 <= result.scores.accuracy <= 100
    probs = Predictor.from_checkpoint(tmp_path / "w").classify(np.zeros((3, 48, 48), np.uint8))
    assert probs.shape == (3, 8) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    train(cfg_for(2), tmp_path / "w", dataset=tiny, **quiet())   # resumed on 1 device
    assert latest_arrays(tmp_path / "w")[1]["epoch"] == 2


def _killed_at(workdir, seconds, epochs):
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, str(workdir), str(epochs)], env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def _check_kills(tmp_path, instants, epochs=3):
    reference = tmp_path / "reference"
    start = time.time()
    _run(reference, epochs)
    duration = time.time() - start
    ref_params = latest_arrays(reference)[0]["params"]
    ref_lines = (reference / "metrics.jsonl").read_text().splitlines()
    rng = np.random.default_rng(0)
    for k in range(instants):
        workdir = tmp_path / f"killed{k}"
        _killed_at(workdir, float(rng.uniform(0.3, 1.0)) * duration, epochs)
        if (workdir / "best").exists() and checkpoint.latest_step(workdir / "best") is not None:
            checkpoint.load_run(workdir)                     # what is on disk evaluates
        _run(workdir, epochs)                                 # and resumes to the same end
        params = latest_arrays(workdir)[0]["params"]
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
            np.testing.assert_array_equal(a, b)
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(x)["epoch"] for x in lines] == list(range(1, epochs + 1))
        strip = lambda ls: [{k: v for k, v in json.loads(x).items() if not k.endswith("seconds")  # noqa: E731
                             and k != "images_per_second"} for x in ls]
        assert strip(lines) == strip(ref_lines)


def test_kill_at_seeded_instants_then_resume_equals_an_uninterrupted_run(tmp_path):
    _check_kills(tmp_path, instants=2)


@pytest.mark.slow
def test_kill_at_many_seeded_instants(tmp_path):
    _check_kills(tmp_path, instants=12)


def test_configs_saved_by_earlier_versions_load_when_they_mean_the_same():
    from ferjax.config import RunConfig
    saved = RunConfig().to_dict()
    saved["loss"]["delay_fraction"] = 0.0          # a field an earlier version wrote
    assert RunConfig.from_dict(saved) == RunConfig()
    saved["loss"]["delay_fraction"] = 0.5
    with pytest.raises(ValueError, match=r"loss\.delay_fraction=0\.5"):
        RunConfig.from_dict(saved)


def test_a_light_model_saved_before_its_layer_table_was_a_field_is_the_flat_one():
    from ferjax.config import ModelConfig, RunConfig
    from ferjax.train.loop import config_differences
    for name in ("light", "vgg13"):
        new = RunConfig(model=ModelConfig(name=name))
        saved = new.to_dict()
        del saved["model"]["light_layers"]           # written before 2026-12-07
        old = RunConfig.from_dict(saved)
        assert old.model.light_layers == "flat"
        differences = [d.split(":")[0] for d in config_differences(old, new)]
        assert differences == (["model.light_layers"] if name == "light" else [])


def test_a_center_loss_saved_before_its_reduction_was_a_field_keeps_its_sum(tmp_path):
    import dataclasses

    from ferjax.config import LossConfig, RunConfig
    from ferjax.train.loop import config_differences
    tl = RunConfig(loss=LossConfig(lam=0.5))
    saved = tl.to_dict()
    del saved["loss"]["center_reduction"]           # written before 2026-12-01: Wen's sum
    old = RunConfig.from_dict(saved)
    assert old.loss.center_reduction == "sum"
    assert [d.split(":")[0] for d in config_differences(old, tl)] == ["loss.center_reduction"]
    sl_saved = RunConfig().to_dict()                # lambda 0: the reduction changes nothing
    del sl_saved["loss"]["center_reduction"]
    assert config_differences(RunConfig.from_dict(sl_saved), RunConfig()) == []
    with pytest.raises(ValueError, match="center-loss reduction"):
        dataclasses.replace(tl.loss, center_reduction="max")


def test_a_second_training_process_on_a_busy_workdir_fails_naming_the_first(tmp_path):
    import os

    from ferjax.config import RunConfig
    from ferjax.train.loop import train
    from ferjax.train.workdir_lock import WorkdirBusyError, workdir_lock
    with workdir_lock(tmp_path):
        with pytest.raises(WorkdirBusyError, match=f"process {os.getpid()} on .*another --workdir"):
            train(RunConfig(epochs=1), tmp_path, progress=False)
        assert not (tmp_path / "group.json").exists()        # it touched nothing
    with workdir_lock(tmp_path):                               # released when its holder ends
        pass
