"""Review: the training and validation loss curves, as a PNG and as data."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from ftp import hookimpl
from ftp.run.store import atomic_write
from ftp.types import Artifact, ReviewRequest


def read_curves(metrics_file: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {"train_loss": [], "eval_loss": []}
    if not metrics_file.exists():
        return curves
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        row: dict[str, Any] = json.loads(line)
        for key in curves:
            if key in row and "step" in row:
                curves[key].append((int(row["step"]), float(row[key])))
    return curves


def plot(curves: dict[str, list[tuple[int, float]]], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for key, label, style in (("train_loss", "training", "-"), ("eval_loss", "validation", "o-")):
        if curves[key]:
            ax.plot([s for s, _ in curves[key]], [v for _, v in curves[key]], style, label=label, markersize=4)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss (answer tokens, log scale)")
    values = [v for pts in curves.values() for _, v in pts]
    if values and min(values) > 0:
        ax.set_yscale("log")  # losses fall by orders of magnitude; a linear axis hides the end
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


@hookimpl
def ftp_review(request: ReviewRequest) -> list[Artifact]:
    curves = read_curves(request.metrics_file)
    data = request.run_dir / "loss_curve.json"
    atomic_write(data, json.dumps({k: [{"step": s, "loss": v} for s, v in pts] for k, pts in curves.items()}, indent=1))
    png = request.run_dir / "loss_curve.png"
    verdict = request.train_result.overfitting or "no sign of overfitting"
    plot(curves, png, f"loss: {verdict}")
    return [Artifact(name="loss_curve.png", path=png, description="training and validation loss"),
            Artifact(name="loss_curve.json", path=data, description="the curve's data points")]
