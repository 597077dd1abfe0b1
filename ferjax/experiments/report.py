"""Paper-shaped tables (markdown) and figures (PNG) from experiment results."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ferjax.classes import CLASS_NAMES
from ferjax.experiments.results import SweepResult, TableResult


def provenance(result: TableResult | SweepResult) -> str:
    p = result.provenance
    reduced = f"REDUCED: {p.train_images} train / {p.valid_images} valid images, " if p.reduced else ""
    size = f"{p.image_size}x{p.image_size} inputs (the study: 64x64), " if p.image_size != 64 else ""
    from ferjax.models import default_batch_norm    # here: redrawing a report needs no JAX otherwise
    if p.batch_norm is not None and p.batch_norm != default_batch_norm(p.model):
        size += f"{'with' if p.batch_norm else 'without'} batch norm after every convolution, "
    if not p.augment:
        size += "no augmentation, "
    if p.light_layers:
        size += f"layers: {p.light_layers}, "
    size += "with dropout, " if p.dropout else "no dropout, "
    if p.learning_rate:
        size += f"peak learning rate {p.learning_rate:g}, "
    if p.center_reduction != "mean":
        size += f"center loss: {p.center_reduction} over the feature units (lambda = the mean form's / units), "
    return (f"data: {p.data}; profile: {p.profile} ({reduced}{size}{p.epochs} epochs, "
            f"{p.seeds_per_row} seed(s) per row, seeds {result.seeds}); "
            f"accuracy: {p.accuracy_split} split at each run's best-validation epoch"
            + (f"; code: {p.code}" if p.code else ""))


FERPLUS_SOURCES = ("the FERPlus labels from github.com/microsoft/FERPlus and the FER2013 images "
                   "from Kaggle (kaggle.com/c/challenges-in-representation-learning-facial-"
                   "expression-recognition-challenge, fer2013.csv)")


def real_command(command: str) -> str:
    """The run's entry point on real data: `python -m ferjax.experiments.X --data DIR`."""
    return " ".join(command.split()[:3] + ["--data", "DIR"])


def synthetic_notice(command: str) -> str:
    """What a run on the built-in faces is and is not, and the one command for the real thing."""
    return (f"BUILT-IN SYNTHETIC FACES, QUICK BUDGET: a demonstration that the pipeline runs and "
            f"learns end to end; these numbers are NOT the paper's and say nothing about FERPlus. "
            f"The real thing: `{real_command(command)}`, where DIR holds {FERPLUS_SOURCES} "
            f"(README, Data).")


def heading(result: TableResult | SweepResult) -> list[str]:
    """The markdown title (and, for the built-in data, the notice under it)."""
    p = result.provenance
    if p.data != "synthetic":
        return [f"## {p.title} ({p.profile} profile)"]
    return [f"## {p.title} ({p.profile} profile, built-in synthetic data: not the "
            f"paper's numbers)", "", "**" + synthetic_notice(p.command) + "**"]


def _split(result: TableResult | SweepResult) -> str:
    return "Test" if result.provenance.accuracy_split == "test" else "Validation"


def markdown_table(result: TableResult) -> str:
    lines = [*heading(result), "", provenance(result), "",
             f"Command: `{result.provenance.command}`", "",
             f"| Configuration | lambda | Avg {_split(result)} acc. | Min | Max | Runs | Parameters | Paper (test) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result.rows:
        lam = "-" if r.lam == 0 else f"{r.lam:g}"
        lines.append(f"| {r.row} | {lam} | {r.avg:.2f} | {r.min:.2f} | {r.max:.2f} | "
                     f"{r.runs} | {r.parameters} | {r.paper_accuracy:.2f} |")
    return "\n".join(lines) + "\n"


def markdown_lambda(result: SweepResult) -> str:
    """Figure 3 as a table: one row per lambda, one column per feature set."""
    curves = result.curves
    lams = sorted({p.lam for pts in curves.values() for p in pts})
    lines = [*heading(result), "", provenance(result), "",
             f"Command: `{result.provenance.command}`", "",
             f"{_split(result)} accuracy, average (min-max) over seeds:", "",
             "| lambda | " + " | ".join(curves) + " |", "|---" * (len(curves) + 1) + "|"]
    for lam in lams:
        cells = []
        for pts in curves.values():
            pt = next((p for p in pts if p.lam == lam), None)
            cells.append("-" if pt is None else
                         f"{pt.avg:.2f}" + (f" ({pt.min:.2f}-{pt.max:.2f})" if len(pt.accuracies) > 1 else ""))
        lines.append(f"| {lam:g}{' (softmax alone)' if lam == 0 else ''} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, result: TableResult | SweepResult, path: Path) -> None:
    """The provenance footer every figure carries, then the PNG."""
    fig.text(0.01, 0.01, provenance(result), fontsize=6)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    _plt().close(fig)


def figure_bars(result: TableResult, path: Path) -> None:
    """Figure 2: each configuration's avg accuracy (min-max as error bars) beside the paper's."""
    plt = _plt()
    rows, p = result.rows, result.provenance
    x = np.arange(len(rows))
    avg = np.array([r.avg for r in rows])
    err = np.array([[r.avg - r.min for r in rows], [r.max - r.avg for r in rows]])
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.bar(x - 0.2, avg, 0.4, yerr=err, capsize=3, label=f"ferjax ({p.profile}, {p.accuracy_split})")
    ax.bar(x + 0.2, [r.paper_accuracy for r in rows], 0.4, label="paper (test)", alpha=0.6)
    ax.set_xticks(x, [r.row for r in rows], rotation=20)
    ax.set_ylabel("accuracy (%)")
    lo = min(avg.min(), min(r.paper_accuracy for r in rows))
    ax.set_ylim(max(0, lo - 10), 100)
    ax.set_title(f"{p.title}: configurations", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, result, path)


def figure_per_class(result: TableResult, path: Path) -> None:
    """Figure 4: per-class accuracy of each configuration."""
    plt = _plt()
    rows, p = result.rows, result.provenance
    fig, ax = plt.subplots(figsize=(10, 4.2))
    width = 0.8 / len(rows)
    x = np.arange(len(CLASS_NAMES))
    for i, r in enumerate(rows):
        ax.bar(x + (i - len(rows) / 2 + 0.5) * width, [np.nan if r.per_class[c] is None else r.per_class[c] for c in CLASS_NAMES],
               width, label=r.row)
    ax.set_xticks(x, CLASS_NAMES)
    ax.set_ylabel(f"{p.accuracy_split} accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{p.title}: per-class accuracy ({p.profile} profile)", fontsize=10)
    ax.legend(fontsize=7, ncol=3)
    _save(fig, result, path)


def figure_lambda(result: SweepResult, path: Path) -> None:
    """Figure 3: accuracy against lambda (log axis), one line per feature set."""
    plt = _plt()
    prov = result.provenance
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, (features, points) in enumerate(result.curves.items()):
        pts, color = [p for p in points if p.lam > 0], f"C{k}"
        avg = np.array([p.avg for p in pts])
        if pts:
            ax.errorbar([p.lam for p in pts], avg, yerr=[avg - [p.min for p in pts], [p.max for p in pts] - avg],
                        marker="o", capsize=3, label=features, color=color)
        for base in (p for p in points if p.lam == 0):    # a log axis has no 0: the SL baseline as a line
            # dashes offset per feature set, so baselines that coincide show every colour
            ax.axhline(base.avg, linestyle=(3 * k, (3, 6)), linewidth=1.2, color=color,
                       label=f"{features}, lambda 0 (softmax alone): {base.avg:.2f}")
    if any(p.lam > 0 for points in result.curves.values() for p in points):
        ax.set_xscale("log")
    ax.set_xlabel("lambda (center-loss weight)")
    ax.set_ylabel(f"{prov.accuracy_split} accuracy (%)")
    ax.set_title(f"{prov.title} ({prov.profile} profile)", fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, result, path)
