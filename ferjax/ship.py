"""Ship a run's kept checkpoint as the model `ferjax predict` uses (ferjax/assets/model): its
newest kept step, with orbax's markers made portable and the class bias fitted on valid, all
prepared beside the shipped model and swapped in whole, so a failure leaves the old one."""
from __future__ import annotations

import shutil
from pathlib import Path

from ferjax import class_bias as cbias
from ferjax.assets import MODEL_DIR
from ferjax.classes import CLASS_NAMES
from ferjax.evaluate import calibrate
from ferjax.train.checkpoint import best_dir, latest_step, load_run, make_markers_portable


def ship(run: str | Path, data: str | None = None, split: str = "valid", out: Path = MODEL_DIR,
         max_accuracy_drop: float = cbias.DEFAULT_MAX_ACCURACY_DROP) -> cbias.ClassBias:
    src = best_dir(run)
    load_run(src)                             # a clear error now if it does not restore
    step = latest_step(src)
    out = Path(out)
    staged, replaced = (out.with_name(out.name + suffix) for suffix in (".shipping", ".replaced"))
    for leftover in (staged, replaced):
        if leftover.exists():
            shutil.rmtree(leftover)
    shutil.copytree(src / str(step), staged / str(step))
    make_markers_portable(staged)
    cb = calibrate(staged, data, split, max_accuracy_drop)
    if out.exists():
        out.rename(replaced)
    staged.rename(out)
    if replaced.exists():
        shutil.rmtree(replaced)
    return cb


def per_class_table(cb: cbias.ClassBias) -> str:
    """The README's table: per-class accuracy on the split, without and with the class bias."""
    def row(name, scores):
        cells = ["-" if scores["per_class"][c] is None else f"{scores['per_class'][c]:.1f}"
                 for c in CLASS_NAMES]
        return f"| {name} | " + " | ".join(cells) + f" | {scores['accuracy']:.2f} |"
    return "\n".join([f"| {cb.fitted_on} | " + " | ".join(CLASS_NAMES) + " | accuracy |",
                      "|---" * (len(CLASS_NAMES) + 2) + "|",
                      row("without class bias", cb.before),
                      row("with class bias (shipped)", cb.after)])
