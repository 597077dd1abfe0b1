"""End-to-end training on small built-in data: learning, resume, sweeps, errors, evaluate."""
import dataclasses
import json

import jax
import numpy as np
import pytest

import ferjax
from ferjax import cli
from ferjax.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig
from ferjax.configs import get_config
from ferjax.data.synthetic import make_synthetic
from ferjax.train.apart import Layout
from ferjax.train.group import Placement, create_states, member
from ferjax.train import checkpoint
from ferjax.train.loop import NonFiniteLossError, train, train_group
from ferjax.train.state import state_arrays


LEARN_PER_CLASS, LEARN_EPOCHS, LEARN_MIN_ACCURACY = 150, 8, 30.0


@pytest.fixture(scope="module")
def tiny():
    return make_synthetic(per_class=24, seed=0)


def cfg_for(epochs=2, lam=0.0, seed=0, batch=32, features="O-S", **kw):
    return RunConfig(data=DataConfig(features=features, batch_size=batch, synthetic_per_class=24),
                     model=ModelConfig(name="light"), loss=LossConfig(lam=lam), epochs=epochs,
                     seed=seed, data_seed=0, **kw)


def params_of(workdir):
    cfg = cfg_for()
    like = state_arrays(create_states([cfg], 1))
    arrays, meta = checkpoint.restore(workdir / "latest", like)
    return arrays["params"], meta


def test_short_run_learns_well_above_chance(tmp_path):
    # The fast recipe (AdamW, one-cycle) on a small built-in set, batch 32 for enough steps.
    # An untrained or broken model sits near chance (12.5%) or at the majority class (~14%).
    cfg = get_config("light", "fast")
    cfg = cfg.replace(data=dataclasses.replace(cfg.data, features="O-S", batch_size=32,
                                               synthetic_per_class=LEARN_PER_CLASS),
                      loss=LossConfig(lam=0.01), epochs=LEARN_EPOCHS, seed=0)
    summary = train(cfg, tmp_path, progress=False, log=lambda *_: None)
    assert summary["valid_accuracy"] > LEARN_MIN_ACCURACY
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == list(range(1, LEARN_EPOCHS + 1))
    assert summary["test_accuracy"] is not None      # synthetic data has a test split
    best = -1.0
    for x in lines:                                   # test scored only when valid improves
        assert (x["test_accuracy"] is not None) == (x["valid_accuracy"] > best), x
        best = max(best, x["valid_accuracy"])
    assert summary["code"]["ferjax"] == ferjax.__version__ and summary["code"]["jax"] == jax.__version__
    assert json.loads((tmp_path / "summary.json").read_text())["code"] == summary["code"]


def test_kill_mid_epoch_and_resume_gives_identical_parameters(tmp_path, tiny):
    steps_per_epoch = len(tiny.splits["train"]) // 32
    full, killed = tmp_path / "full", tmp_path / "killed"
    train(cfg_for(epochs=3), full, dataset=tiny, progress=False, log=lambda *_: None)
    out = train_group([cfg_for(epochs=3)], killed, dataset=tiny, progress=False, log=lambda *_: None,
                      stop_after_steps=steps_per_epoch + 2)        # dies inside epoch 2
    assert out == [] and params_of(killed)[1]["epoch"] == 1
    train(cfg_for(epochs=3), killed, dataset=tiny, progress=False, log=lambda *_: None)
    (p_full, m_full), (p_res, m_res) = params_of(full), params_of(killed)
    assert m_full["epoch"] == m_res["epoch"] == 3
    for a, b in zip(jax.tree.leaves(p_full), jax.tree.leaves(p_res)):
        np.testing.assert_array_equal(a, b)
    epochs = [json.loads(x)["epoch"] for x in (killed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


def test_vmapped_group_equals_separate_runs(tiny):
    from ferjax.data.pipeline import train_batches
    from ferjax.data.votes import label_split
    # SGD: linear in the gradient, so float-order noise stays noise (Adam's first steps turn
    # near-zero gradients of batch-norm parameters into +-lr)
    sgd = OptimConfig(optimizer="sgd", learning_rate=0.01)
    cfgs = [cfg_for(lam=0.0, seed=0, optim=sgd), cfg_for(lam=0.3, seed=1, optim=sgd)]
    split = label_split(tiny.splits["train"], "majority")
    batches = list(train_batches(split, feature_set="O-S", batch_size=32, seed=0, epoch=0))[:3]

    def run(group):
        pl = Placement.create(len(group), 32)
        state, step = pl.put_state(create_states(group, 10)), pl.batch_train_step()
        for b in batches:
            state, _ = step(state, pl.put_batch(b))
        return state

    stacked = run(cfgs)
    for k, c in enumerate(cfgs):
        alone = member(run([c]), 0)
        for a, b in zip(jax.tree.leaves(member(stacked, k).params), jax.tree.leaves(alone.params)):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(member(stacked, k).centers, alone.centers, atol=1e-5)


def test_a_group_stepped_apart_equals_its_runs_trained_alone(tmp_path, tiny):
    # on a CPU host each run of a group is its own program: the single run's, to the bit
    cfgs = [cfg_for(lam=0.0, seed=0), cfg_for(lam=0.3, seed=1)]
    assert Layout.create(len(cfgs), 32).apart
    quiet = dict(dataset=tiny, progress=False, log=lambda *_: None)
    train_group(cfgs, tmp_path / "group", names=["a", "b"], **quiet)

    def curve(d):
        lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
        return [(x["train_loss"], x["train_accuracy"], x["valid_accuracy"]) for x in lines]
    for c, name in zip(cfgs, ["a", "b"]):
        train(c, tmp_path / name, **quiet)
        assert curve(tmp_path / "group" / "runs" / name) == curve(tmp_path / name)
    assert curve(tmp_path / "a") != curve(tmp_path / "b")


def test_non_finite_loss_stops_with_step_and_epoch(tmp_path, tiny):
    bad = cfg_for(epochs=1).replace(loss=LossConfig(lam=float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"epoch 1, step 1 "):
        train(bad, tmp_path, dataset=tiny, progress=False, log=lambda *_: None)
    assert checkpoint.latest_step(tmp_path / "latest") is None     # nothing bad was saved


def test_batch_larger_than_data_and_config_mismatch_are_clear_errors(tmp_path, tiny):
    with pytest.raises(ValueError, match="larger than the"):
        train(cfg_for(batch=100_000), tmp_path / "a", dataset=tiny, progress=False, log=lambda *_: None)
    train(cfg_for(epochs=1), tmp_path / "b", dataset=tiny, progress=False, log=lambda *_: None)
    with pytest.raises(ValueError, match="another configuration"):
        train(cfg_for(epochs=1, features="O"), tmp_path / "b", dataset=tiny, progress=False,
              log=lambda *_: None)


def test_cli_train_then_evaluate_json(tmp_path, capsys):
    work = tmp_path / "run"
    assert cli.main(["train", "--features", "O-L", "--loss", "TL", "--lam", "0.1", "--epochs", "1",
                     "--batch-size", "32", "--weight-decay", "0.01", "--no-dropout", "--workdir", str(work),
                     "--no-progress"]) == 0
    capsys.readouterr()
    saved = json.loads((work / "summary.json").read_text())["config"]
    assert saved["optim"]["weight_decay"] == 0.01 and saved["data"]["batch_size"] == 32
    assert saved["model"]["dropout"] is False
    assert cli.main(["evaluate", "--checkpoint", str(work), "--split", "test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"accuracy", "per_class", "confusion", "num_images"}
    assert out["features"] == "O-L" and out["num_images"] == int(np.sum(out["confusion"]))
    assert len(out["per_class"]) == 8 and 0 <= out["accuracy"] <= 100


def test_evaluate_errors_name_the_problem(tmp_path, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["evaluate", "--checkpoint", str(tmp_path / "empty")]) == 2
    assert "no kept checkpoint" in capsys.readouterr().err


def test_evaluation_inputs_are_prepared_once_as_the_step_would():
    """put_eval_data preprocesses a split in chunks (the last padded): the same inputs as
    evaluation_inputs on the whole split, targets and labels alongside."""
    from ferjax.data.augment import evaluation_inputs
    from ferjax.data.records import LabeledSplit
    from ferjax.train.group import EVAL_INPUT_CHUNK
    rng = np.random.default_rng(0)
    n = EVAL_INPUT_CHUNK + 44
    labels = rng.integers(0, 8, n).astype(np.int32)
    split = LabeledSplit(rng.integers(0, 256, (n, 48, 48)).astype(np.uint8), np.eye(8, dtype=np.float32)[labels], labels)
    cfg = get_config("light", "fast").replace(data=DataConfig(features="O-S", image_size=32))
    data = Placement.create(1, 16).put_eval_data(split, cfg)
    assert data["image"].shape == (n, 32, 32, 2) and data["image"].dtype == np.float32
    np.testing.assert_allclose(np.asarray(data["image"]), np.asarray(evaluation_inputs(split.images, "O-S", 32)),
                               atol=1e-5)
    np.testing.assert_array_equal(np.asarray(data["label"]), labels)
    np.testing.assert_array_equal(np.asarray(data["target"]), split.targets)
    empty = LabeledSplit(split.images[:0], split.targets[:0], labels[:0])
    assert Placement.create(1, 16).put_eval_data(empty, cfg)["image"].shape == (0, 32, 32, 2)
