"""``ftp retrain NAME``: judge ``retrain_when:``, and when it fires build the next data version (the live
version's training split plus the corrected answers collected as feedback) and run the pipeline on it
through ``run_pipeline`` with ``compare_to: [base, champion]`` on the live version's own test split. The
pipeline's gate decides; when it passes, its register step sets ``challenger`` and its deploy step puts
the new version in the other slot with the starting traffic. Every decision goes to the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ftp.errors import FtpError, UserError
from ftp.monitor import decisions
from ftp.monitor.features import answer_of, prompt_of
from ftp.monitor.gather import Sources
from ftp.monitor.triggers import Facts, decide, evaluate


@dataclass(frozen=True)
class NewExamples:
    examples: list[dict[str, Any]]  # chat examples: the prompt and the corrected answer
    left_out: int  # whose prompt is one of the test split's (kept out: the comparison stays fair)
    unknown_prompt: int  # feedback on a request logged without content, and no messages given


def collected(log: Path, after: str | None, test_prompts: set[str]) -> NewExamples:
    """Each ``expected`` feedback since ``after`` whose prompt is known (the feedback's ``messages``, or
    the request's logged text), one per prompt (the latest answer wins)."""
    from ftp.monitor.feedback import read_feedback
    from ftp.serve.request_log import read_requests

    from ftp.serve.request_log import normalise_ts

    after = normalise_ts(after) if after else None
    items = [f for f in read_feedback(log) if f["name"] == "expected" and (after is None or f["ts"] > after)]
    wanted = {f["request_id"] for f in items if f["request_id"] and not f["messages"]}
    texts = {r["request_id"]: r["prompt_text"] for r in read_requests(log) if r["request_id"] in wanted} if wanted else {}
    by_prompt: dict[str, dict[str, Any]] = {}
    left_out = unknown = 0
    for item in items:
        prompt = item["messages"] or (json.loads(texts[item["request_id"]]) if texts.get(item["request_id"]) else None)
        if not prompt:
            unknown += 1
            continue
        key = json.dumps(prompt_of(prompt), sort_keys=True, ensure_ascii=False)
        if key in test_prompts:
            left_out += 1
            continue
        by_prompt[key] = {"messages": [*prompt_of(prompt), {"role": "assistant", "content": item["value"]}]}
    return NewExamples(list(by_prompt.values()), left_out, unknown)


def _prompts(path: Path) -> set[str]:
    from ftp.data.files import read_jsonl

    return {json.dumps(prompt_of(ex["messages"]), sort_keys=True, ensure_ascii=False)
            for ex in read_jsonl(path) if isinstance(ex.get("messages"), list) and answer_of(ex["messages"]) is not None}


def champion_accuracy(version: Any) -> float | None:
    """The accuracy (else exact match) the champion scored in its own evaluation."""
    metrics = ((version.lineage or {}).get("evaluation") or {}).get("metrics") or {}
    mine = metrics.get("fine-tuned") or version.metrics.get("test") or {}
    value = mine.get("accuracy", mine.get("exact_match"))
    return float(value) if isinstance(value, (int, float)) else None


def facts_for(sources: Sources, name: str, hooks: Any, now: datetime) -> Facts:
    from ftp.deploy.slots import live_version

    number = live_version(sources.store, name)
    live = sources.registry.get(name, number) if number is not None and sources.registry else None
    alias = sources.settings.deploy.alias or "champion"
    champ_no = sources.registry.alias(name, alias) if sources.registry else None
    champion = sources.registry.get(name, champ_no) if champ_no else live
    new = 0
    if live is not None and sources.settings.retrain_when.new_data is not None:
        new = len(collected(sources.log, live.created_at, set()).examples)
    retirement = hooks.base_retirement(live.backend, live.base_model) if live is not None else None
    return Facts(live=live, champion_accuracy=champion_accuracy(champion) if champion else None, new_examples=new,
                 retirement=retirement, today=now.date(), now=now)


def judge(sources: Sources, name: str, summary: dict[str, Any], labels: Any, hooks: Any,
          now: datetime | None = None) -> dict[str, Any]:
    """The decision on ``name`` now (not recorded)."""
    now = now or datetime.now(timezone.utc)
    settings = sources.settings.retrain_when
    results = evaluate(settings, summary, labels, facts_for(sources, name, hooks, now))
    return decide(settings, results, decisions.read(sources.log, name, "retrain"), now)


def next_data(sources: Sources, name: str, out: Path) -> tuple[dict[str, Path], NewExamples, Any]:
    """The live version's split restored into ``out`` with the new examples added to train.jsonl."""
    from ftp.deploy.slots import live_version
    from ftp.registry.lineage import restore_data
    from ftp.registry.store import ArtifactStore

    number = live_version(sources.store, name)
    live = sources.registry.get(name, number) if number is not None else None
    if live is None:
        raise UserError(f"{name}: nothing is deployed in {sources.store}, so there is no training data to extend")
    if sources.artifacts is None:
        raise UserError(f"{name}: no artifact store (register.artifacts) to read v{live.version}'s data from")
    files = restore_data(live, ArtifactStore(sources.artifacts), out)
    new = collected(sources.log, None, _prompts(files["test"]))
    if new.examples:
        with open(files["train"], "a", encoding="utf-8") as fh:
            fh.writelines(json.dumps(ex, ensure_ascii=False) + "\n" for ex in new.examples)
    return files, new, live


def retrain(sources: Sources, pipeline: Path, name: str, decision: dict[str, Any], *, runs_dir: Any = None,
            reporter: Any = None, work: Path | None = None) -> dict[str, Any]:
    """Run the pipeline on the next data version; the decision recorded with what happened."""
    from ftp.run.pipeline import run_pipeline

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    out = (work or pipeline.parent / ".ftp" / "retrain") / f"{name}-{stamp}"
    files, new, live = next_data(sources, name, out)
    starting = sources.settings.retrain_when.starting_traffic
    overrides = [f"data.train={files['train']}", f"data.validation={files['validation']}",
                 f"data.test={files['test']}", "evaluate.compare_to=[base, champion]", "register.alias=challenger"]
    if starting is not None:
        overrides.append(f"deploy.traffic.new={starting}")
    details = {**decision, "data": str(out), "new_examples": len(new.examples), "left_out_as_test": new.left_out,
               "unknown_prompt": new.unknown_prompt, "from_version": live.version}
    decisions.record(sources.log, name, "retrain", True, "started", details)  # the cooldown holds from here
    try:
        run = run_pipeline(pipeline, live.backend, overrides, runs_dir=runs_dir, reporter=reporter, assume_yes=True)
    except FtpError as exc:
        details["error"] = str(exc)
        decisions.record(sources.log, name, "retrain", True, f"run failed: {str(exc)[:200]}", details)
        raise
    registered = sources.registry.alias(name, "challenger") if sources.registry else None
    details.update(run_id=run.state.run_id, registered=registered)
    action = f"run {run.state.run_id}: registered v{registered} as challenger" if registered else f"run {run.state.run_id}"
    decisions.record(sources.log, name, "retrain", True, action, details)
    return details


def recorded(sources: Sources, name: str, decision: dict[str, Any]) -> None:
    """A decision that starts nothing (no rule fired, or the cooldown held it), kept in the audit log."""
    decisions.record(sources.log, name, "retrain", False, "none", decision)
