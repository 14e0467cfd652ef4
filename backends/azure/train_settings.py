"""Which of the pipeline's ``train`` settings Azure honours, checked before any step runs.

Azure's services take a few hyperparameters and choose the rest themselves; a setting the user wrote
for a local run (``learning_rate``, ``lora``, ``warmup_ratio``...) would silently do nothing there. So
``preflight`` refuses what cannot be submitted (a fractional epoch count) and warns about every key
the file sets that the chosen service ignores, saying what to use instead where there is an equivalent.
"""

from __future__ import annotations

from typing import Any, Literal

from ftp.config.settings import TrainSettings
from ftp.errors import UserError

Service = Literal["openai", "azureml"]
HONOURED: dict[Service, frozenset[str]] = {
    "openai": frozenset({"epochs", "batch_size", "seed"}),  # n_epochs, batch_size, seed of the fine-tuning job
    "azureml": frozenset({"epochs", "batch_size", "learning_rate"}),
}
NAMES: dict[Service, str] = {"openai": "Azure OpenAI fine-tuning", "azureml": "Azure ML fine-tuning"}
INSTEAD: dict[str, str] = {
    "learning_rate": "set backends.azure.learning_rate_multiplier instead",
    "seed": "set backends.azure.seed",
}


def whole_epochs(value: Any) -> int:
    epochs = float(value)
    if epochs != int(epochs) or epochs < 1:
        raise UserError(f"train.epochs: Azure takes a whole number of epochs (1 or more), got {value}; "
                        "set train.epochs (or backends.azure.train.epochs) to e.g. 3")
    return int(epochs)


def ignored(settings: TrainSettings, service: Service) -> list[str]:
    """One warning per ``train`` key the file sets that ``service`` does not take."""
    out = []
    for key in sorted(settings.model_fields_set - HONOURED[service]):
        if key == "method" and settings.method == "lora":
            continue  # the services fine-tune adapters of their own: asking for LoRA is not wrong
        fix = INSTEAD.get(key, "the service chooses it itself")
        out.append(f"train.{key}: ignored by {NAMES[service]} ({fix})")
    return out
