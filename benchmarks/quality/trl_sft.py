"""The hand-written TRL reference: LoRA supervised fine-tuning with TRL's SFTTrainer, as a careful
engineer would write it for a chat JSONL file. The quality benchmark compares ftp's defaults against it.

    python benchmarks/quality/trl_sft.py --model MODEL_DIR --train train.jsonl [--validation validation.jsonl] \
        --out ADAPTER_DIR --seed 1

MODEL_DIR is a transformers model folder (the benchmark passes the Gemma 3 270M that ftp converted
from its GGUF). The settings are the usual ones for a small model on a narrow task: LoRA r=16,
alpha 32, dropout 0.05 on every linear layer, learning rate 2e-4, batch 8, 3 epochs, loss on the
completion only, bf16 mixed precision on a GPU; everything else is TRL's default (linear decay, no
warm-up, AdamW, gradient clipping at 1.0, no packing). The data is turned into TRL's conversational
prompt/completion form: the prompt is every message but the last, the completion the last
(assistant) message. The tokenizer gets Gemma 3's published chat format, written out below.
With ``--ftp-start`` the run starts from ftp's LoRA weights and takes the examples in ftp's order for
``--seed`` (ftp_start.py), leaving dropout as the only random stream that differs from ftp's run.
Writes the adapter and the tokenizer to ADAPTER_DIR, and train_result.json (wall time, losses,
versions) beside them. Needs trl (tested with 1.16.0), peft, datasets, transformers, torch.
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from pathlib import Path
from typing import Any

# Gemma 3's chat format (the template published with google/gemma-3-*-it), for string contents: no
# system role, so the system text opens the first user turn followed by a blank line; the assistant
# is "model"; every turn is "<start_of_turn>ROLE\n" + content (trimmed) + "<end_of_turn>\n"; <bos> first.
GEMMA3_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}"
    "{%- set first_user_prefix = '' -%}"
    "{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{%- endif -%}"
    "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{{ message['content'] | trim }}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


BATCH = 8  # examples per step, as ftp's default


def prompt_completion(path: Path) -> list[dict[str, Any]]:
    """A chat JSONL file as TRL's conversational prompt/completion records."""
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            messages = json.loads(line)["messages"]
            rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return rows


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="LoRA SFT with TRL's SFTTrainer (the quality benchmark's reference)")
    parser.add_argument("--model", type=Path, required=True, help="a transformers model folder")
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--validation", type=Path, default=None, help="reported each epoch; does not pick the model")
    parser.add_argument("--out", type=Path, required=True, help="where the adapter and tokenizer go")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-steps", type=int, default=-1, help="for smoke tests")
    parser.add_argument("--ftp-start", action="store_true",
                        help="start from ftp's LoRA weights and take the examples in ftp's order for --seed (ftp_start.py)")
    parser.add_argument("--lora-dropout", type=float, default=0.05, help="0 for parity checks with ftp")
    args = parser.parse_args(argv)

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available() if args.device == "auto" else args.device == "cuda"
    tokenizer = AutoTokenizer.from_pretrained(str(args.model))
    tokenizer.chat_template = GEMMA3_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(args.model), dtype=torch.float32)

    rows, epochs, ftp_weights = prompt_completion(args.train), args.epochs, None
    if args.ftp_start:
        from ftp_start import ftp_start

        ftp_weights, order = ftp_start(args.model, len(rows), args.seed, args.epochs, BATCH, "cuda" if on_gpu else "cpu")
        rows, epochs = [rows[i] for i in order], 1.0  # every epoch laid out in ftp's order, read in sequence
    train = Dataset.from_list(rows)
    validation = Dataset.from_list(prompt_completion(args.validation)) if args.validation else None
    peft_config = LoraConfig(r=16, lora_alpha=32, lora_dropout=args.lora_dropout, target_modules="all-linear", task_type="CAUSAL_LM")
    config = SFTConfig(
        output_dir=str(args.out / "trainer"),
        learning_rate=2e-4,
        per_device_train_batch_size=BATCH,
        num_train_epochs=epochs,
        max_steps=args.max_steps,
        completion_only_loss=True,
        max_length=1024,
        bf16=on_gpu,  # mixed precision: fp32 weights and optimiser, bf16 matmuls
        use_cpu=not on_gpu,
        seed=args.seed,
        gradient_checkpointing=False,  # a 270M model fits easily; same maths, faster
        eval_strategy="epoch" if validation is not None else "no",
        per_device_eval_batch_size=8,
        logging_steps=10,
        save_strategy="no",
        report_to="none",
    )
    class InOrder(SFTTrainer):  # type: ignore[misc]
        """Batches in the dataset's order (ftp's, laid out by ftp_start) instead of a shuffled one."""

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return torch.utils.data.SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

    trainer = (InOrder if ftp_weights is not None else SFTTrainer)(
        model=model, args=config, train_dataset=train, eval_dataset=validation, processing_class=tokenizer,
        peft_config=peft_config)
    if ftp_weights is not None:
        from peft import set_peft_model_state_dict

        loaded = set_peft_model_state_dict(trainer.model, ftp_weights)
        if getattr(loaded, "unexpected_keys", None):
            raise SystemExit(f"ftp's start does not fit this model: {loaded.unexpected_keys[:3]}")
    start = time.perf_counter()
    result = trainer.train()
    wall = time.perf_counter() - start
    trainer.save_model(str(args.out))  # the LoRA adapter (adapter_config.json, adapter_model.safetensors)
    tokenizer.save_pretrained(str(args.out))
    summary = {"wall_seconds": round(wall, 2), "metrics": result.metrics, "steps": result.global_step,
               "log_history": trainer.state.log_history, "seed": args.seed, "ftp_start": args.ftp_start, "device": "cuda" if on_gpu else "cpu",
               "versions": versions()}
    (args.out / "train_result.json").write_text(json.dumps(summary, indent=1, default=str), encoding="utf-8")
    print(json.dumps({k: summary[k] for k in ("wall_seconds", "steps", "metrics")}, default=str))


if __name__ == "__main__":
    main()
