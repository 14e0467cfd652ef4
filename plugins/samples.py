"""Review: what the fine-tuned model answers to a few validation prompts, beside the reference."""

from __future__ import annotations

import json

from ftp import hookimpl
from ftp.data.files import reference_answer
from ftp.run.store import atomic_write
from ftp.types import Artifact, ReviewRequest


def _prompt_text(messages: list[dict]) -> str:
    return "\n".join(f"**{m.get('role')}**: {m.get('content')}" for m in messages)


@hookimpl
def ftp_review(request: ReviewRequest) -> list[Artifact]:
    if not request.samples or request.predictor is None:
        return []
    predictor = request.predictor()
    if predictor is None:  # the backend cannot answer prompts for this model (the runner said why)
        return []
    references = [reference_answer(ex) for ex in request.samples]
    longest = max(predictor.count_tokens(r) for r in references)
    answers = predictor.generate([ex["messages"][:-1] for ex in request.samples], int(longest * 1.25) + 8)
    rows = [{"prompt": ex["messages"][:-1], "reference": ref, "generated": ans}
            for ex, ref, ans in zip(request.samples, references, answers)]
    jsonl = request.run_dir / "samples.jsonl"
    atomic_write(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    md = ["# Sample generations (validation split)\n"]
    for i, r in enumerate(rows, 1):
        md += [f"## Sample {i}\n", _prompt_text(r["prompt"]), "",
               f"**reference**: {r['reference']}", "", f"**generated**: {r['generated']}", ""]
    atomic_write(request.run_dir / "samples.md", "\n".join(md))
    return [Artifact(name="samples.md", path=request.run_dir / "samples.md",
                     description=f"{len(rows)} sample generations beside their references")]
