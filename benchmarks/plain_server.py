"""The baseline for ``serve_gpu.py``: what a user hand-writes to put a fine-tuned adapter behind HTTP, a
FastAPI route around a plain ``model.generate`` (bf16, greedy, the adapter's chat template), one request
at a time under a lock, as the model cannot take two ``generate`` calls at once.

    python benchmarks/plain_server.py --base BASE_DIR --adapter ADAPTER_DIR --port 8101
"""

# No ``from __future__ import annotations``: FastAPI reads the route's ``Request`` annotation at definition.
import argparse
import threading
import time
from typing import Any


def build(base: str, adapter: str) -> Any:
    import torch
    from fastapi import FastAPI, Request
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"  # a CPU only to try the script out
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model = model.to(device)
    model = PeftModel.from_pretrained(model, adapter).eval()
    lock = threading.Lock()
    eos = model.generation_config.eos_token_id
    stops = {*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id, tokenizer.pad_token_id} - {None}
    # the chat format's end-of-turn token, which the converted Gemma's generation config does not name: without
    # it every answer runs to max_tokens (the 2026-12-02 GPU run measured the baseline that way)
    vocab = tokenizer.get_vocab()
    stops |= {vocab[t] for t in ("<end_of_turn>", "<|eot_id|>", "<|im_end|>") if t in vocab}
    app = FastAPI()

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        ids = tokenizer.apply_chat_template(body["messages"], add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True).to(device)
        with lock, torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=int(body.get("max_tokens") or 64), do_sample=False,
                                 eos_token_id=sorted(stops))
        new = out[0, ids["input_ids"].shape[1]:]
        text = tokenizer.decode(new, skip_special_tokens=True)
        row = new.tolist()
        used = next((i for i, t in enumerate(row) if t in stops), len(row))  # answer tokens, as usage counts them
        return {"id": "plain", "object": "chat.completion", "created": int(time.time()), "model": "plain",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": int(ids["input_ids"].shape[1]), "completion_tokens": used,
                          "total_tokens": int(ids["input_ids"].shape[1]) + used}}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> dict[str, Any]:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(answer, await request.json())

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True)
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--port", type=int, default=8101)
    args = parser.parse_args()
    import uvicorn

    uvicorn.run(build(args.base, args.adapter), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
