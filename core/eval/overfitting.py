"""The overfitting verdict the review step reports, the same for every backend.

A local run and an Azure job both end with a training curve and a validation curve; which of them
overfitted must not depend on where they ran, so both backends ask this one function.
"""

from __future__ import annotations

from collections.abc import Sequence

Curve = Sequence[tuple[int, float]]  # (step, loss), in step order


def verdict(train: Curve, val: Curve) -> str | None:
    """A verdict when validation loss rose after its best point while training loss kept falling.

    Needs three validation points; "rose" means more than 2% above the best, and "falling" compares
    the mean of the last five training losses up to the best point with the last five at the end."""
    if len(val) < 3 or not train:
        return None
    best = min(range(len(val)), key=lambda i: val[i][1])
    if best == len(val) - 1:
        return None
    (s0, v0), (s1, v1) = val[best], val[-1]
    before = [loss for step, loss in train if step <= s0][-5:]
    after = [loss for step, loss in train if step > s1 - 5][-5:] or [train[-1][1]]
    if v1 > v0 * 1.02 and before and sum(after) / len(after) < sum(before) / len(before):
        return (f"overfitting: validation loss rose from {v0:.4f} (step {s0}) to {v1:.4f} (step {s1}) "
                "while training loss fell; try fewer epochs (train.epochs)")
    return None
