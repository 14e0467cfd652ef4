"""How often the drift trigger fires on traffic drawn like the training data (its false-positive rate),
and how fast it fires on shifted traffic, for the tiny task the tests train on (conftest.make_examples).

    python benchmarks/monitor_drift_fpr.py [--windows 1000] [--n 200] [--out benchmarks/results/monitor_drift_fpr.json]

The reference is the prompts of 300 training examples; each window is ``--n`` served prompts, through
the same feature function the server logs (ftp.monitor.features) and the monitor's default statistics
(PSI > 0.25 on numeric features, Jensen-Shannon distance > 0.15 on the turn count). The trigger is
``retrain_when.drift`` with its defaults: one drifting feature in each of 2 consecutive windows.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conftest import make_examples  # noqa: E402
from monitor_traffic import like_training, shifted  # noqa: E402

from ftp.config.monitor_settings import NUMERIC_FEATURES  # noqa: E402
from ftp.monitor.drift import categorical_drift, numeric_drift  # noqa: E402
from ftp.monitor.features import prompt_features, prompt_of  # noqa: E402

# prompt_oov is left out: the generator reuses the training's ticket numbers, which a leave-one-out
# vocabulary rightly counts as new words in training but not in traffic (real tickets bring new numbers)
FEATURES = [f for f in NUMERIC_FEATURES if f.startswith("prompt_") and f != "prompt_oov"] + ["prompt_turns"]


def features_of(prompts: list[list[dict[str, str]]]) -> dict[str, list[Any]]:
    rows = [prompt_features(p) for p in prompts]
    return {f: [str(r[f]) if f == "prompt_turns" else r[f] for r in rows] for f in FEATURES}


def drifted(reference: dict[str, list[Any]], window: dict[str, list[Any]], n: int) -> list[str]:
    out = []
    for f in FEATURES:
        judge = categorical_drift if f == "prompt_turns" else numeric_drift
        if judge(f, reference[f], window[f], min_samples=n).drifted:
            out.append(f)
    return out


def window(n: int, seed: int, shifted_share: float) -> list[list[dict[str, str]]]:
    rng = random.Random(seed)
    calm = [p for p, _ in like_training(n, seed)]
    odd = [p for p, _ in shifted(n, seed + 10**6)]
    return [odd[i] if rng.random() < shifted_share else calm[i] for i in range(n)]


def measure(windows: int, n: int, shares: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 1.0)) -> dict[str, Any]:
    reference = features_of([prompt_of(ex["messages"]) for ex in make_examples(300)])
    out: dict[str, Any] = {"reference_examples": 300, "window_requests": n, "windows": windows, "features": FEATURES,
                           "thresholds": {"population_stability_index": 0.25, "jensen_shannon_distance": 0.15},
                           "by_shifted_share": {}}
    for share in shares:
        found = [drifted(reference, features_of(window(n, 1000 * (k + 1), share)), n) for k in range(windows)]
        any_window = [bool(f) for f in found]
        pairs = sum(1 for a, b in zip(any_window, any_window[1:]) if a and b)
        per_feature = {f: sum(f in d for d in found) / windows for f in FEATURES}
        out["by_shifted_share"][str(share)] = {
            "windows_with_any_drift": sum(any_window) / windows,
            "trigger_rate_2_consecutive": pairs / max(windows - 1, 1),
            "per_feature": per_feature,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", type=int, default=1000)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    result = measure(args.windows, args.n)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
