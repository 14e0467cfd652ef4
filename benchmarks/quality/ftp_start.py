"""ftp's starting point for a training seed, for the TRL reference to start from (``trl_sft.py --ftp-start``).

With the same data, ftp's math equals TRL's (tests/test_trl_parity.py), yet on the GPU their runs differ
by seed: a run either generalises to a test phrasing or misses it. Three random streams differ between
the two programs: the LoRA matrices' initial values, the order of the examples, and the dropout masks.
Giving TRL ftp's first two for a seed separates "ftp's seed was unlucky" (TRL from the same start
misses the same phrasings) from "ftp trains differently on the GPU" (it does not).

``ftp_start`` reproduces what ``ftp.backends.local.training.train`` does before its first step, with
ftp's own functions: seed Python and torch, build the PEFT model with the pipeline file's LoRA defaults,
and lay out the epochs' shuffled orders (``schedule.epoch_order``) as its steps take them.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any


def ftp_start(model_dir: Path, examples: int, seed: int, epochs: float, batch: int,
              device: str = "cpu") -> tuple[dict[str, Any], list[int]]:
    """(LoRA state dict as PEFT saves it, example indices in the order ftp's steps take them)."""
    import torch
    from peft import get_peft_model_state_dict

    from ftp.backends.local.modeling import placement
    from ftp.backends.local.schedule import epoch_order
    from ftp.backends.local.training import prepare_model
    from ftp.config.settings import LoraSettings

    if examples % batch:
        raise ValueError(f"{examples} examples do not make whole batches of {batch}: TRL's batches would straddle "
                         "ftp's epochs")
    random.seed(seed)
    torch.manual_seed(seed)
    model = prepare_model(model_dir, "lora", LoraSettings(), placement("cuda" if device == "cuda" else "cpu"), False)
    state = {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(model).items()}
    taken = math.ceil(examples // batch * epochs) * batch  # the examples ftp's steps take, epoch after epoch
    order = [i for epoch in range(math.ceil(taken / examples)) for i in epoch_order(examples, seed, epoch)]
    return state, order[:taken]
