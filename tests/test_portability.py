"""Committed results travel: no absolute paths of the machine that made them, and every JSON
parses with a strict parser (no NaN/Infinity)."""
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def strict_loads(text: str):
    def reject(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=reject)


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / p for p in out.stdout.decode().split("\0") if p]


def test_no_tracked_file_names_an_absolute_path_of_this_machine():
    machine_paths = {str(REPO.parent) + "/", "/tmp/" + "tmp", "/tmp/" + "pytest-of-"}
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue                                   # binary files (checkpoint arrays, PNGs)
        hits = [p for p in machine_paths if p in text and path != Path(__file__)]
        if hits:
            offenders.append(f"{path.relative_to(REPO)}: {hits}")
    assert not offenders, offenders


def test_every_tracked_json_is_strict():
    bad = []
    for path in tracked_files():
        if path.suffix in (".json", ".jsonl"):
            lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
            for line in filter(str.strip, lines):
                try:
                    strict_loads(line)
                except ValueError as e:
                    bad.append(f"{path.relative_to(REPO)}: {e}")
    assert not bad, bad[:5]


def test_a_table_with_an_empty_class_writes_null_and_one_line_per_row(tmp_path):
    from ferjax.experiments.common import _mean_or_none
    from ferjax.experiments.report import markdown_table
    from ferjax.experiments.results import Provenance, RowResult, TableResult, json_text
    assert _mean_or_none([None, None]) is None and _mean_or_none([50.0, None, 70.0]) == 60.0
    row = RowResult(row="base+SL", features="O", loss="SL", lam=0.0, accuracies=(50.0, float("nan")),
                    split="valid", best_epochs=(1, 1), seeds=(0, 1), checkpoints=("runs/x", "runs/y"),
                    parameters="0.36M", paper_accuracy=81.95,
                    per_class={"neutral": 60.0, "contempt": None})
    prov = Provenance(title="T", model="light", profile="fast", epochs=1, seeds_per_row=2,
                      data="synthetic", train_images=10, reduced=False, accuracy_split="valid",
                      command="c", valid_images=10, image_size=64, batch_size=64)
    result = TableResult(prov, (row, dataclasses.replace(row, row="base+TL", lam=0.5)))
    parsed = strict_loads(json_text(result))        # a NaN accuracy is written as null
    assert parsed["rows"][0]["per_class"]["contempt"] is None and parsed["rows"][0]["accuracies"][1] is None
    lines = [ln for ln in markdown_table(result).splitlines() if ln.startswith("| base")]
    assert lines[0].startswith("| base+SL |") and lines[1].startswith("| base+TL |") and len(lines) == 2


def test_a_table_json_reads_back_as_the_same_result():
    from ferjax.experiments.results import TableResult, json_text
    for path in (REPO / "experiments").glob("*/table[12].json"):
        stored = json.loads(path.read_text())
        again = json.loads(json_text(TableResult.from_json(stored)))
        assert {k: again[k] for k in stored} == stored, path
