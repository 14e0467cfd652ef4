"""The quality benchmark (benchmarks/quality/): its tasks, its one evaluation and bootstrap, its TRL
reference's chat format, and an end-to-end CPU smoke of the orchestrator on a tiny model."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import build_tiny_llama, invoke

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ROOT / "benchmarks" / "quality"
SMALL = (60, 12, 20)


def _load(name: str) -> ModuleType:
    """A benchmark module under a unique name (``tasks``/``evaluate`` are common module names)."""
    if str(QUALITY) not in sys.path:
        sys.path.insert(0, str(QUALITY))
    spec = importlib.util.spec_from_file_location(f"quality_{name}", QUALITY / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


tasks = _load("tasks")
ev = _load("evaluate")
trl_sft = _load("trl_sft")


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def full_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quality-data")
    for name in tasks.TASKS:
        tasks.write_task(out, name, seed=0)
    return out


def test_generators_are_deterministic_and_sized(tmp_path: Path, full_data: Path) -> None:
    for name in tasks.TASKS:
        again = tasks.write_task(tmp_path, name, seed=0)
        for split, n in zip(tasks.SPLITS, tasks.DEFAULT_SIZES):
            assert (tmp_path / name / f"{split}.jsonl").read_bytes() == (full_data / name / f"{split}.jsonl").read_bytes()
            assert again["stats"][split]["examples"] == n == again["stats"][split]["distinct_prompts"]
        other = tasks.generate(name, seed=1, sizes=SMALL)
        assert [e.messages for e in other["train"]] != [json.loads(x)["messages"] for x in
                                                          (full_data / name / "train.jsonl").read_text().splitlines()[:60]]


def test_tasks_have_the_shapes_asked_for(full_data: Path) -> None:
    intent = _jsonl(full_data / "intent" / "train.jsonl")
    labels = {r["messages"][-1]["content"] for r in intent}
    assert len(labels) >= 8 and {"refund", "return", "billing", "payment_method", "shipping_delay", "lost_package"} <= labels
    order = _jsonl(full_data / "order_json" / "test.jsonl")
    for r in order:
        answer = r["messages"][-1]["content"]
        parsed = json.loads(answer)
        assert list(parsed) == ["item", "color", "size", "quantity", "gift_wrap"]
        assert answer == json.dumps(parsed, separators=(",", ":"))
    for r in _jsonl(full_data / "normalise" / "test.jsonl"):
        assert __import__("re").fullmatch(r"\d{4}-\d\d-\d\d \| \d\d:\d\d \| [A-Z][A-Za-z ]+ \| [A-Z][a-z]+, [A-Z][a-z]+",
                                          r["messages"][-1]["content"])
    status = _jsonl(full_data / "order_status" / "test.jsonl")
    assert all([m["role"] for m in r["messages"]] == ["system"] + ["user", "assistant"] * 3 for r in status)
    # the answer is in an earlier turn of the dialogue, for about half the examples two turns back
    assert all(r["messages"][-1]["content"] in r["messages"][2]["content"] + r["messages"][4]["content"] for r in status)
    systems = [n for n in tasks.TASKS if _jsonl(full_data / n / "train.jsonl")[0]["messages"][0]["role"] == "system"]
    assert len(systems) >= 2


def test_test_phrasings_never_occur_in_training(full_data: Path) -> None:
    for name in tasks.TASKS:
        info = json.loads((full_data / name / "templates.json").read_text())
        seen = set(info["templates"]["train"]) | set(info["templates"]["validation"])
        assert not seen & set(info["templates"]["test"]), name
        parts = lambda tid: {p for p in tid.split("|") if p}  # noqa: E731
        train_parts = set().union(*(parts(t) for t in seen))
        for tid in info["templates"]["test"]:
            assert parts(tid) and not parts(tid) & train_parts, (name, tid)
            assert all("/test/" in p for p in parts(tid)), (name, tid)
        # the rendered text: no test prompt is a train prompt, and every test template's signature phrase
        # (its longest literal run of >= 3 words) is absent from every training and validation prompt
        train = [r["messages"] for s in ("train", "validation") for r in _jsonl(full_data / name / f"{s}.jsonl")]
        corpus = "\n".join(tasks.words(" ".join(m["content"] for m in msgs[:-1])) for msgs in train)
        keys = {tasks.prompt_key(m) for m in train}
        for r in _jsonl(full_data / name / "test.jsonl"):
            assert tasks.prompt_key(r["messages"]) not in keys
        phrases = {tasks.signature_phrase(p.split("/", 2)[2]) for tid in info["templates"]["test"] for p in parts(tid)}
        strong = [ph for ph in phrases if len(ph.split()) >= 3]
        assert strong and all(f" {ph} " not in corpus for ph in strong), name


def test_the_check_catches_a_leak() -> None:
    splits = tasks.generate("normalise", seed=0, sizes=SMALL)
    leaked = tasks.Example(list(splits["train"][0].messages), list(splits["train"][0].parts))
    with pytest.raises(AssertionError):
        tasks.check_generalisation({**splits, "test": splits["test"] + [leaked]}, "normalise")


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_every_file_passes_ftp_data_check(full_data: Path, name: str) -> None:
    folder = full_data / name
    for split in tasks.SPLITS:
        result = invoke("data", "check", str(folder / f"{split}.jsonl"), "--json")
        assert result.exit_code == 0, result.output[-2000:]
    result = invoke("data", "check", str(folder / "train.jsonl"), "--validation", str(folder / "validation.jsonl"),
                    "--test", str(folder / "test.jsonl"), "--json")
    assert result.exit_code == 0, result.output[-2000:]


def test_bootstrap_interval() -> None:
    same = [[1, 0, 1, 1, 0] * 24]
    assert ev.bootstrap_diff(same, same) == pytest.approx({**ev.bootstrap_diff(same, same), "diff": 0.0, "low": 0.0,
                                                           "high": 0.0})
    # a, over 120 examples: 30 examples where a is right and b wrong, the rest equal -> +0.25
    a = [[1] * 30 + [1, 0] * 45]
    b = [[0] * 30 + [1, 0] * 45]
    r = ev.bootstrap_diff(a, b, resamples=10_000, seed=0)
    assert r["diff"] == pytest.approx(0.25)
    assert r["low"] < 0.25 < r["high"] and r["low"] > 0.15 and r["high"] < 0.35
    assert r["share_not_above_zero"] == 0.0
    assert ev.bootstrap_diff(a, b, seed=0) == r  # a fixed generator seed
    # seeds pooled: two seeds at 1 and 0 on an example count as 0.5 there
    r2 = ev.bootstrap_diff([[1, 1, 0, 0], [0, 1, 0, 0]], [[0, 1, 0, 0]])
    assert r2["diff"] == pytest.approx(0.125)
    assert -0.5 <= r2["low"] <= r2["diff"] <= r2["high"] <= 0.5
    with pytest.raises(ValueError):
        ev.bootstrap_diff([[1, 0]], [[1, 0, 1]])


def test_seed_variance_widens_the_two_stage_interval() -> None:
    """A configuration that generalises on some seeds and misses a phrasing on others (order_json): the
    interval over seeds and examples is wider than the one that pools seeds, and includes zero here."""
    good, bad = [1] * 120, [1] * 80 + [0] * 40
    a = [good, bad, good, bad]
    b = [[1] * 100 + [0] * 20] * 4  # steady at 83.3%
    pooled = ev.bootstrap_diff(a, b, resamples=2_000)
    both = ev.seeds_and_examples_diff(a, b, resamples=2_000)
    assert both["diff"] == pytest.approx(pooled["diff"]) == pytest.approx(0.0)
    assert both["high"] - both["low"] > 1.5 * (pooled["high"] - pooled["low"])
    assert both["seeds"] == [4, 4] and both["examples"] == 120
    steady = ev.seeds_and_examples_diff([good] * 3, b, resamples=2_000)  # no seed variance: a clear gain
    assert steady["low"] > 0.08
    with pytest.raises(ValueError):
        ev.seeds_and_examples_diff([[1, 0]], [[1, 0, 1]])


def test_reference_template_is_ftps_gemma_format() -> None:
    """The TRL reference and the evaluation render exactly what ftp's built-in Gemma template renders."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from ftp.backends.local.chat import TEMPLATES

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = lambda msg: (_ for _ in ()).throw(ValueError(msg))
    conversations = [
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi "}, {"role": "assistant", "content": "ok"}],
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
         {"role": "assistant", "content": "d"}],
        [{"role": "system", "content": "S"}, {"role": "user", "content": "u1"}, {"role": "assistant", "content": "a1"},
         {"role": "user", "content": "u2"}, {"role": "assistant", "content": "a2"}],
    ]
    ours, ftps = env.from_string(trl_sft.GEMMA3_TEMPLATE), env.from_string(TEMPLATES["gemma"])
    for conv in conversations:
        for gen in (False, True):
            kw = {"messages": conv[:-1] if gen else conv, "add_generation_prompt": gen, "bos_token": "<bos>"}
            assert ours.render(**kw) == ftps.render(**kw)
    text = ours.render(messages=conversations[0], add_generation_prompt=False, bos_token="<bos>")
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n"


def test_trl_data_is_prompt_completion(full_data: Path) -> None:
    rows = trl_sft.prompt_completion(full_data / "order_status" / "train.jsonl")
    assert len(rows) == 800
    assert rows[0]["completion"][0]["role"] == "assistant" and len(rows[0]["prompt"]) == 6


def test_variants_parse() -> None:
    run = _load("run")
    v = run.parse_variant("noes:train.early_stopping=null,train.epochs=2")
    assert (v.name, v.kind, v.sets) == ("noes", "ftp", ["train.early_stopping=null", "train.epochs=2"])
    assert run.parse_variant("lst:train.lora.target_modules=[q_proj, v_proj],train.seed=3").sets == [
        "train.lora.target_modules=[q_proj, v_proj]", "train.seed=3"]
    for bad in ("noname", "trl:train.epochs=1", "x:"):
        with pytest.raises(SystemExit):
            run.parse_variant(bad)


def build_tiny_gemma(out: Path) -> Path:
    """A 2-layer Llama with a BPE tokenizer that has Gemma's special tokens (no chat template of its own,
    so ftp picks its Gemma format, the one the evaluation uses)."""
    corpus = [json.dumps(e.messages) for n in tasks.TASKS for e in tasks.generate(n, 0, SMALL)["train"]]
    return build_tiny_llama(out, corpus + ["user model"],
                            ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"], 700, 1024,
                            pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                            additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_gemma(tmp_path_factory.mktemp("tiny-gemma"))


def test_evaluation_scores_every_candidate_the_same_way(tiny_gemma: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    tasks.write_task(data, "intent", 0, (12, 4, 6))
    result = ev.evaluate_model(tiny_gemma, None, data / "intent" / "test.jsonl", batch_size=4)
    assert result["examples"] == 6 and len(result["correct"]) == len(result["predictions"]) == 6
    tok = ev.load_tokenizer(tiny_gemma)
    assert result["max_new_tokens"] == ev.budget(tok, [r["messages"][-1]["content"] for r in
                                                        _jsonl(data / "intent" / "test.jsonl")])
    prompt = ev.render_prompt(tok, _jsonl(data / "intent" / "test.jsonl")[0]["messages"])
    assert prompt.startswith("<bos><start_of_turn>user\nYou sort") and prompt.endswith("<start_of_turn>model\n")
    assert ev.exact(" refund\n", "refund") == 1 and ev.exact("refund.", "refund") == 0


def test_run_smoke_on_cpu(tiny_gemma: Path, tmp_path: Path) -> None:
    """run.py end to end: data, one ftp training, the base and the adapter evaluated, results and table."""
    out = tmp_path / "results.json"
    proc = subprocess.run([sys.executable, str(QUALITY / "run.py"), "--model", str(tiny_gemma), "--tasks", "intent",
                           "--sizes", "40,10,10", "--seeds", "1", "--device", "cpu", "--trl-ftp-start", "--parallel", "2",
                           "--work", str(tmp_path / "work"), "--out", str(out), "--resamples", "500",
                           "--ftp-set", "train.epochs=1", "--ftp-set", "evaluate.compare_to=[]"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**__import__("os").environ, "FTP_CACHE_DIR": str(tmp_path / "cache")})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads(out.read_text())
    entry = results["tasks"]["intent"]
    assert set(entry["configs"]) == {"base", "ftp", "trl", "trl_ftpstart"}
    assert all(len(entry["configs"][c]["runs"]["1"]["correct"]) == 10 for c in ("trl", "trl_ftpstart"))
    ftp_run = entry["configs"]["ftp"]["runs"]["1"]
    assert len(ftp_run["correct"]) == 10 and ftp_run["train"]["steps"] == 5
    assert ftp_run["template_agrees"] is True  # ftp saved the Gemma format the evaluation renders with
    assert entry["comparisons"]["ftp - base"]["resamples"] == 500 and "ftp - trl" in entry["comparisons"]
    assert results["versions"]["torch"] and "commit" in results["commit"]
    assert "| intent | ftp |" in out.with_suffix(".md").read_text()
    pipeline = (tmp_path / "work" / "jobs" / "intent" / "ftp" / "s1" / "pipeline.yaml").read_text()
    assert [line.split(":")[0] for line in pipeline.splitlines() if not line.startswith(" ")] == ["name", "data", "model"]
    # a second invocation with the same work folder finds everything done
    again = subprocess.run(proc.args, capture_output=True, text=True, cwd=tmp_path, timeout=300,
                           env={**__import__("os").environ, "FTP_CACHE_DIR": str(tmp_path / "cache")})
    assert again.returncode == 0 and "] start " not in again.stdout


def test_trl_from_ftps_start_trains_what_ftp_trains(tiny_gemma: Path, tmp_path: Path) -> None:
    """trl_sft.py --ftp-start: ftp's initial LoRA weights and example order for a seed. Without dropout
    (the one random stream left), TRL then ends where ftp ends, mini-batches shuffled over two epochs."""
    from safetensors.torch import load_file

    pytest.importorskip("trl")
    tasks.write_task(tmp_path / "data", "intent", 0, (32, 8, 8))
    data = tmp_path / "data" / "intent"
    out = tmp_path / "trl"
    proc = subprocess.run([sys.executable, str(QUALITY / "trl_sft.py"), "--model", str(tiny_gemma), "--train",
                           str(data / "train.jsonl"), "--out", str(out), "--seed", "3", "--device", "cpu", "--epochs", "2",
                           "--ftp-start", "--lora-dropout", "0"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "train_result.json").read_text())["steps"] == 8
    (tmp_path / "pipeline.yaml").write_text(
        f"name: parity\ndata: {{train: {data}/train.jsonl, validation: {data}/validation.jsonl, test: {data}/test.jsonl}}\n"
        f"model: {{base: {tiny_gemma}}}\n", encoding="utf-8")
    sets = ["train.seed=3", "train.epochs=2", "train.lora.dropout=0", "train.scheduler=linear", "train.warmup_ratio=0",
            "train.early_stopping=null", "train.eval_steps=1000", "backends.local.devices=cpu"]
    result = invoke("run", str(tmp_path / "pipeline.yaml"), "--steps", "validate,split,train", "--runs-dir",
                    str(tmp_path / "runs"), *[a for s in sets for a in ("--set", s)])
    assert result.exit_code == 0, result.output[-3000:]
    ours = load_file(str(next((tmp_path / "runs").glob("parity/*/model/adapter_model.safetensors"))))
    theirs = load_file(str(out / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys() and len(ours) == 28
    worst = max(float((ours[k].float() - theirs[k].float()).abs().max()) for k in ours)
    assert worst < 1e-5, f"TRL from ftp's start differs from ftp by up to {worst:.2e}"
