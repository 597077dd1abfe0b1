"""benchmarks/data_load.py without tensorflow-datasets: its TFDS targets are skipped with a
message and the report is still written. The workers are replaced by a stub, so this checks
the driver (rounds, summary, strict JSON) without spawning processes or importing TensorFlow."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import data_load  # noqa: E402


def fake_worker(*args: str) -> dict:
    return {"seconds": 0.5, "import_s": 1.0, "images": {"train": 3, "valid": 2},
            "rss_after_imports_mb": 100.0, "peak_rss_mb": 120.0}


def test_tfds_targets_skipped_when_absent(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)      # import fails
    assert data_load.load_tfds() is None
    monkeypatch.setattr(data_load, "tfds_installed", lambda: False)
    calls = []
    monkeypatch.setattr(data_load, "run_worker", lambda *a: calls.append(a[0]) or fake_worker(*a))

    out = tmp_path / "report.json"
    assert data_load.main(["--data", str(tmp_path), "--repeats", "2", "--out", str(out)]) == 0

    assert data_load.TFDS_MISSING in capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["tfds"]["available"] is False and list(report["targets"]) == ["ferjax"]
    assert calls == ["ferjax"] * 4                      # cold + warm, two rounds
    assert report["targets"]["ferjax"]["warm"]["seconds"]["median"] == 0.5
    assert str(tmp_path) not in out.read_text()
