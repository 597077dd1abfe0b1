"""Class bias: offsets fitted on valid that make a rare class predicted at a bounded cost,
kept beside the checkpoint, applied by evaluate and the Predictor, refused when stale."""
import json

import numpy as np
import pytest

from ferjax import class_bias, cli
from ferjax.classes import CLASS_NAMES, NUM_CLASSES

DISGUST = CLASS_NAMES.index("disgust")


def leaning_probs(n=2000, seed=0):
    """Every class is argmax for its own images, except disgust: its images lean towards it
    (second place, behind anger) but are never its argmax, as in a model trained on few."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    logits = rng.normal(0, 1, (n, NUM_CLASSES))
    logits[np.arange(n), labels] += 4.0
    d = labels == DISGUST
    logits[d, CLASS_NAMES.index("anger")] = logits[d, DISGUST] + 1.0
    logits[:, DISGUST] -= 0.5 * (~d)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return probs, labels


def test_fit_makes_the_rare_class_predicted_within_the_accuracy_bound():
    probs, labels = leaning_probs()
    before = class_bias.summary(probs, labels, np.zeros(NUM_CLASSES))
    assert before["per_class"]["disgust"] == 0.0
    bias = class_bias.fit(probs, labels, max_accuracy_drop=0.5)
    after = class_bias.summary(probs, labels, bias)
    assert bias[DISGUST] > 0 and after["per_class"]["disgust"] > 50.0
    assert after["accuracy"] >= before["accuracy"] - 0.5
    # no room at all: only offsets that cost nothing are taken
    strict = class_bias.fit(probs, labels, max_accuracy_drop=0.0)
    assert class_bias.summary(probs, labels, strict)["accuracy"] >= before["accuracy"]


def test_kept_offsets_round_trip_and_stale_or_broken_files_are_named(tmp_path):
    cb = class_bias.ClassBias(bias={c: 0.0 for c in CLASS_NAMES} | {"disgust": 2.0}, step=7,
                              fitted_on="valid", data="synthetic", max_accuracy_drop=0.5,
                              before={}, after={})
    class_bias.save(tmp_path, cb)
    assert class_bias.load(tmp_path, 7) == cb
    assert class_bias.load(tmp_path, 7).vector[DISGUST] == 2.0
    with pytest.warns(RuntimeWarning, match="fitted for step 7"):
        assert class_bias.load(tmp_path, 9) is None
    (tmp_path / class_bias.FILE).write_text("{not json")
    with pytest.raises(ValueError, match="class_bias.json"):
        class_bias.load(tmp_path, 7)
    assert class_bias.load(tmp_path / "elsewhere", 7) is None


def test_calibrate_then_evaluate_and_predict_use_the_kept_offsets(tmp_path, capsys):
    work = tmp_path / "run"
    assert cli.main(["train", "--epochs", "1", "--batch-size", "32", "--synthetic-per-class", "16",
                     "--workdir", str(work), "--no-progress"]) == 0
    assert cli.main(["calibrate", "--checkpoint", str(work), "--max-accuracy-drop", "100"]) == 0
    assert "class bias fitted on synthetic valid" in capsys.readouterr().out
    kept = json.loads((work / "best" / class_bias.FILE).read_text())
    assert set(kept["bias"]) == set(CLASS_NAMES)
    assert cli.main(["evaluate", "--checkpoint", str(work), "--split", "valid", "--json"]) == 0
    biased = json.loads(capsys.readouterr().out)
    assert biased["class_bias"] == kept["bias"]           # the checkpoint still restores beside it
    assert biased["accuracy"] == pytest.approx(kept["after"]["accuracy"], abs=1e-6)
    assert cli.main(["evaluate", "--checkpoint", str(work), "--split", "valid", "--json",
                     "--no-class-bias"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["class_bias"] is None
    assert plain["accuracy"] == pytest.approx(kept["before"]["accuracy"], abs=1e-6)

    from ferjax.predict import Predictor
    p = Predictor.from_checkpoint(work)
    np.testing.assert_array_equal(p.class_bias, [kept["bias"][c] for c in CLASS_NAMES])
    assert Predictor.from_checkpoint(work, use_class_bias=False).class_bias is None

    # ship: the kept step, portable markers and the refitted offsets, swapped in whole
    out = tmp_path / "assets" / "model"
    assert cli.main(["ship", "--checkpoint", str(work), "--out", str(out),
                     "--max-accuracy-drop", "100"]) == 0
    printed = capsys.readouterr().out
    assert "| with class bias (shipped) |" in printed
    shipped = json.loads((out / class_bias.FILE).read_text())
    assert shipped["step"] == kept["step"] and shipped["bias"] == kept["bias"]
    assert sorted(p.name for p in out.iterdir()) == sorted([str(kept["step"]), class_bias.FILE])
    markers = list(out.rglob("commit_success.txt"))
    assert markers and not any(str(tmp_path) in m.read_text() for m in markers)
    assert Predictor.from_checkpoint(out).class_bias is not None
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert cli.main(["ship", "--checkpoint", str(tmp_path / "assets"), "--out", str(out)]) == 2
    assert "no kept checkpoint" in capsys.readouterr().err
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before   # the old one stays
