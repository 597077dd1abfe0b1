"""The experiment entry points end to end on tiny built-in data (a few steps per run)."""
import json
import shutil
from pathlib import Path

import pytest

import ferjax
from ferjax import cli
from ferjax.experiments import lambda_sweep
from ferjax.experiments.common import table_main
from ferjax.experiments.paper import TABLE2
from ferjax.experiments.publish import publish

def strict(token):
    raise AssertionError(f"{token} in JSON: not strict JSON")


TINY = ["--epochs", "1", "--seeds", "2", "--synthetic-per-class", "12", "--batch-size", "16", "--no-progress"]


def test_table2_writes_paper_shaped_outputs_and_publishes_checkpoints(tmp_path, capsys):
    out = tmp_path / "t2"
    assert table_main("table2", TINY + ["--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "quick profile" in printed and "data: synthetic" in printed
    assert "NOT the paper's" in printed and "--data DIR" in printed and "microsoft/FERPlus" in printed
    result = json.loads((out / "table2.json").read_text(), parse_constant=strict)
    assert [r["row"] for r in result["rows"]] == [r.name for r in TABLE2]
    assert result["profile"] == "quick" and result["accuracy_split"] == "test"
    for r in result["rows"]:
        assert r["runs"] == 2 and r["min"] <= r["avg"] <= r["max"] and len(r["per_class"]) == 8
    for png in ("table2_fig2_configurations.png", "table2_fig4_per_class.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    md = (out / "table2.md").read_text()
    assert "| base+S+TL | 0.01 |" in md and "built-in synthetic data" in md.splitlines()[0]
    assert f"code: ferjax {ferjax.__version__}" in md and result["code"].startswith("ferjax ")
    for r in TABLE2:                                        # one line per row
        assert sum(line.startswith(f"| {r.name} |") for line in md.splitlines()) == 1

    index = tmp_path / "checkpoints.json"
    entries = publish(out / "table2.json", tmp_path / "published", index, tmp_path)
    assert set(entries) == {r.name for r in TABLE2}
    ckpt = tmp_path / entries["base+S+TL"]["checkpoint"]
    assert cli.main(["evaluate", "--checkpoint", str(ckpt), "--split", "valid", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["features"] == "O-S" and scored["lam"] == 0.01

    # every run's record is published: the table is made again from the published folder alone
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "published" / "runs", again / "runs")
    assert table_main("table2", TINY + ["--out", str(again), "--report-only"]) == 0
    remade = json.loads((again / "table2.json").read_text())
    assert [(r["row"], r["accuracies"], r["per_class"]) for r in remade["rows"]] == \
        [(r["row"], r["accuracies"], r["per_class"]) for r in result["rows"]]

    # a best run whose kept checkpoint is gone: a clear error, and nothing published is lost
    row = next(r for r in result["rows"] if r["row"] == "base+SL")
    best = max(range(row["runs"]), key=lambda i: row["accuracies"][i])
    shutil.rmtree(Path(row["checkpoints"][best]) / "best")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "published").rglob("*"))
    with pytest.raises(FileNotFoundError, match="base\\+SL.*best"):
        publish(out / "table2.json", tmp_path / "published", index, tmp_path)
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "published").rglob("*")) == before


def test_lambda_sweep_writes_figure_3(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = TINY + ["--feature-sets", "O-L", "--lams", "0", "0.01", "1", "--out", str(out)]
    assert lambda_sweep.main(argv) == 0
    result = json.loads((out / "lambda_sweep.json").read_text(), parse_constant=strict)
    assert [p["lam"] for p in result["curves"]["O-L"]] == [0.0, 0.01, 1.0]
    assert (out / "lambda_sweep_fig3.png").read_bytes()[:4] == b"\x89PNG"
    table = (out / "lambda_sweep.md").read_text()
    assert "| lambda | O-L |" in table and "| 0.01 | " in table and "| 1 | " in table
    assert "| 0 (softmax alone) | " in table
    with pytest.raises(SystemExit):
        lambda_sweep.main(TINY + ["--lams", "-0.1", "--out", str(tmp_path / "bad")])
    (out / "lambda_sweep.md").unlink()
    assert lambda_sweep.main(["--replot", str(out / "lambda_sweep.json")]) == 0   # no training
    assert (out / "lambda_sweep.md").read_text() == table
    # published: table, figure and every run's record, no checkpoint; the sweep is made again
    # from the published records alone
    index = tmp_path / "checkpoints.json"
    assert publish(out / "lambda_sweep.json", tmp_path / "published", index, tmp_path) == {}
    assert not index.exists() and not list((tmp_path / "published").rglob("best"))
    again = tmp_path / "again"
    shutil.copytree(tmp_path / "published" / "runs", again / "runs")
    assert lambda_sweep.main([*argv[:-1], str(again), "--report-only"]) == 0
    assert json.loads((again / "lambda_sweep.json").read_text())["curves"] == result["curves"]
    # one point of the default grid (quick: 0.01 0.1 1) trains alone in a folder named after it,
    # beside the group above, and the whole sweep reports it with the rest
    assert lambda_sweep.main(TINY + ["--seeds", "1", "--feature-sets", "O-L", "--lams", "0.1",
                                     "--out", str(out)]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "light-O-L-seed0", "light-O-L-seed0-O-L-lam0.1", "light-O-L-seed1"]
    assert lambda_sweep.main([*argv[:-1], str(out), "--lams", "0", "0.01", "0.1", "1", "--report-only"]) == 0
    lams = [(p["lam"], len(p["seeds"])) for p in json.loads((out / "lambda_sweep.json").read_text())["curves"]["O-L"]]
    assert lams == [(0.0, 2), (0.01, 2), (0.1, 1), (1.0, 2)]
    # a run linked in from elsewhere (a table's run as a sweep's point) is published with the rest
    point = out / "runs" / "light-O-L-seed0-O-L-lam0.1"
    point.rename(tmp_path / "elsewhere")
    point.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    publish(out / "lambda_sweep.json", tmp_path / "published2", index, tmp_path)
    assert (tmp_path / "published2" / "runs" / point.name).is_dir()
    assert not (tmp_path / "published2" / "runs" / point.name).is_symlink()
    assert list((tmp_path / "published2" / "runs" / point.name).rglob("summary.json"))
    # --keep: a named run's kept checkpoint too (what ships); an unknown name: a clear error first
    publish(out / "lambda_sweep.json", tmp_path / "published2", index, tmp_path, keep=("O-L-lam1-seed1",))
    kept = tmp_path / "published2" / "checkpoints" / "O-L-lam1-seed1"
    assert (kept / "best").is_dir() and json.loads((kept / "summary.json").read_text())["config"]["seed"] == 1
    with pytest.raises(FileNotFoundError, match="O-L-lam7-seed0"):
        publish(out / "lambda_sweep.json", tmp_path / "published3", index, tmp_path, keep=("O-L-lam7-seed0",))
    assert not (tmp_path / "published3").exists()


def test_quick_table2_rows_learn_on_a_smaller_budget(tmp_path):
    """Issue #16: a default (quick, built-in data) row must not sit at chance (12.5%) or the
    majority class. The O rows (SL and TL, lambda 0.5) of the quick profile on less data."""
    out = tmp_path / "t2"
    argv = ["--feature-sets", "O", "--epochs", "8", "--synthetic-per-class", "150", "--batch-size", "32",
            "--no-progress", "--out", str(out)]
    assert table_main("table2", argv) == 0
    result = json.loads((out / "table2.json").read_text())
    assert [r["row"] for r in result["rows"]] == ["base+SL", "base+TL"]
    for r in result["rows"]:
        assert r["avg"] >= 30.0, r


def test_quick_table1_rows_learn(tmp_path):
    """Issue #16: the main job's default (quick VGG13) rows must leave chance (12.5%). The O-L
    rows, a third of the main job: the SL row and the slowest learner, TL at lambda 1 (which
    collapsed to chance while the profile kept VGG13's dropout)."""
    out = tmp_path / "t1"
    argv = ["--feature-sets", "O-L", "--no-progress", "--out", str(out)]
    assert table_main("table1", argv) == 0
    result = json.loads((out / "table1.json").read_text())
    assert [r["row"] for r in result["rows"]] == ["O-L-SL", "O-L-TL"]
    assert "batch norm" in (out / "table1.md").read_text() and "no dropout" in (out / "table1.md").read_text()
    for r in result["rows"]:
        assert r["avg"] >= 35.0, r


def test_a_selected_row_trains_alone_and_the_report_finds_it(tmp_path, capsys):
    """--rows trains one configuration in a folder of its own; --report-only over its whole
    feature set reports it and leaves out the row that never trained."""
    out = tmp_path / "t2"
    tiny = ["--epochs", "1", "--seeds", "1", "--synthetic-per-class", "12", "--batch-size", "16",
            "--no-progress", "--out", str(out)]
    assert table_main("table2", tiny + ["--rows", "base+SL"]) == 0
    assert (out / "runs" / "light-O-seed0-base+SL" / "summary.json").exists()
    capsys.readouterr()
    assert table_main("table2", tiny + ["--feature-sets", "O", "--report-only"]) == 0
    printed = capsys.readouterr().out
    assert "base+SL-seed0 finished" in printed and "base+TL-seed0 not finished" in printed
    result = json.loads((out / "table2.json").read_text())
    assert [r["row"] for r in result["rows"]] == ["base+SL"]
    assert result["title"].endswith("(partial: base+SL, base+TL; the finished runs only)"), result["title"]


def test_a_finished_run_is_reused_by_its_config_not_its_name(tmp_path):
    """A run trained by `ferjax train` (its own name, data seed left to default to the seed)
    and linked into a table's runs folder counts for the row whose config it has, and only
    for that row."""
    from ferjax.config import DataConfig, LossConfig, ModelConfig, RunConfig
    from ferjax.experiments.common import finished_summary
    base_sl, base_tl = TABLE2[0], TABLE2[3]
    row_cfg = RunConfig(data=DataConfig(features="O"), model=ModelConfig(name="light"),
                        loss=LossConfig(lam=0.0), epochs=3, seed=1, data_seed=1)
    trained = row_cfg.replace(data_seed=None)
    folder = tmp_path / "light-O-seed1-base+SL"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"name": "light-O-SL-lam0-seed1",
                                                     "config": trained.to_dict()}))
    assert finished_summary(tmp_path, "light", 1, base_sl, row_cfg)["name"] == "light-O-SL-lam0-seed1"
    tl_cfg = row_cfg.replace(loss=LossConfig(lam=base_tl.lam))
    assert finished_summary(tmp_path, "light", 1, base_tl, tl_cfg) is None
    assert finished_summary(tmp_path, "light", 1, base_sl, row_cfg.replace(epochs=4)) is None


def test_report_only_without_finished_runs_names_the_folder(tmp_path):
    with pytest.raises(SystemExit, match=r"no finished run under .*nothing.runs"):
        table_main("table2", TINY + ["--out", str(tmp_path / "nothing"), "--report-only"])


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("folder", sorted(p.parent.name for p in (ROOT / "experiments").glob("*/runs")))
def test_committed_table_is_made_again_from_its_records(folder, tmp_path):
    """The table or sweep publish committed equals what its stored command reports from the
    run records committed beside it (no training: --report-only)."""
    published = ROOT / "experiments" / folder
    table_json = next(p for p in published.glob("*.json") if p.stem.startswith(("table", "lambda_sweep")))
    committed = json.loads(table_json.read_text())
    words = committed["command"].split()
    experiment, argv = words[2].rsplit(".", 1)[1], words[3:]
    out = argv.index("--out") + 1
    argv = [*argv[:out], str(tmp_path), *argv[out + 1:]]
    shutil.copytree(published / "runs", tmp_path / "runs")
    # a table written before the light model's layer table was a field used the "flat" one,
    # which its command names only since (experiments/README.md)
    before_the_field = "light_layers" not in committed
    light = committed["model"] == "light"
    flat = ["--light-layers", "flat"] if before_the_field and light and "--light-layers" not in argv else []
    main = lambda_sweep.main if experiment == "lambda_sweep" else (lambda a: table_main(experiment, a))
    assert main(argv + flat + ["--report-only"]) == 0
    remade = json.loads((tmp_path / table_json.name).read_text())
    if before_the_field:
        assert remade.pop("light_layers") == ("flat" if light else "")
    assert remade.pop("command").replace(str(tmp_path), "OUT") == \
        " ".join([committed.pop("command").replace(words[3:][out], "OUT"), *flat])
    assert remade == committed


def test_dropout_is_the_recipes_unless_given_and_reaches_every_row_config_and_the_table():
    import argparse
    from ferjax.experiments.common import add_arguments, resolve_profile, row_configs
    p = argparse.ArgumentParser()
    add_arguments(p, "out")
    args = p.parse_args(["--data", "somewhere", "--profile", "fast", "--no-dropout"])
    profile = resolve_profile(args, "light")
    assert profile.name == "fast" and profile.dropout is False and profile.stated()["dropout"] is False
    assert row_configs(TABLE2[5], "light", profile, args, seed=0).model.dropout is False
    # the fast recipe's own: the light model without dropout, VGG13 with (the paper's: both with)
    for argv, model, dropout in ((["--profile", "fast"], "light", False),
                                 (["--profile", "fast"], "vgg13", True),
                                 (["--profile", "fast", "--dropout"], "light", True),
                                 (["--profile", "paper"], "light", True),
                                 (["--data", "synthetic"], "light", False)):   # quick: fast's recipe
        args = p.parse_args(["--data", "somewhere", *argv])
        profile = resolve_profile(args, model)
        assert profile.dropout is dropout and profile.stated()["dropout"] is dropout, (argv, model)
        assert row_configs(TABLE2[5], model, profile, args, seed=0).model.dropout is dropout


def test_the_seed_plan_gives_the_baseline_and_the_studys_best_row_three_seeds():
    """paper and fast: 3 seeds of a table's baseline and of the study's best row, 2 of the
    others (what issue #13 asks of Table II); --seeds N: N of every row; quick: 1."""
    import argparse
    from ferjax.experiments.common import add_arguments, anchor_rows, resolve_profile, seed_plan
    from ferjax.experiments.paper import TABLE1
    p = argparse.ArgumentParser()
    add_arguments(p, "out")
    fast = resolve_profile(p.parse_args(["--data", "d", "--profile", "fast"]), "light")
    assert seed_plan(TABLE2, fast, anchor_rows(TABLE2)) == {
        "base+SL": 3, "base+S+SL": 2, "base+L+SL": 2, "base+TL": 2, "base+S+TL": 3, "base+L+TL": 2}
    paper = resolve_profile(p.parse_args(["--data", "d"]), "vgg13")
    assert {r for r, n in seed_plan(TABLE1, paper, anchor_rows(TABLE1)).items() if n == 3} == {"O-SL", "O-L-TL"}
    four = resolve_profile(p.parse_args(["--data", "d", "--profile", "fast", "--seeds", "4"]), "light")
    assert set(seed_plan(TABLE2, four, anchor_rows(TABLE2)).values()) == {4}
    quick = resolve_profile(p.parse_args([]), "light")
    assert set(seed_plan(TABLE2, quick, anchor_rows(TABLE2)).values()) == {1}
    assert set(seed_plan(TABLE2, fast).values()) == {2}      # a sweep's rows: no anchors
