"""Tables as data inputs: Parquet, CSV and ``datasets.save_to_disk`` folders, with ``data.columns``.

Real files written with pyarrow and datasets in tmp_path; the same checks, split and errors as chat JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import invoke, make_examples

from ftp.data.sources import bundle, iter_examples, read_examples
from ftp.errors import UserError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
MAPPING = {"prompt": "question", "completion": "answer"}


def qa_columns(n: int, system: bool = False) -> dict[str, list[Any]]:
    """The project's colour task as a question/answer table."""
    rows = make_examples(n)
    cols: dict[str, list[Any]] = {"question": [r["messages"][0]["content"] for r in rows],
                                  "answer": [r["messages"][1]["content"] for r in rows]}
    if system:
        cols["instruction"] = ["Name the colour as JSON."] * n
    return cols


def write_parquet(path: Path, cols: dict[str, list[Any]]) -> Path:
    pq.write_table(pa.table(cols), path)
    return path


def write_csv(path: Path, cols: dict[str, list[Any]]) -> Path:
    import pyarrow.csv as pacsv

    pacsv.write_csv(pa.table(cols), path)
    return path


def write_folder(path: Path, cols: dict[str, list[Any]]) -> Path:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict(cols).save_to_disk(str(path))
    return path


WRITERS = {"parquet": (write_parquet, "train.parquet"), "csv": (write_csv, "train.csv"),
           "folder": (write_folder, "train_ds")}


def table(tmp_path: Path, kind: str, cols: dict[str, list[Any]]) -> Path:
    write, name = WRITERS[kind]
    return write(tmp_path / name, cols)


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_kind_maps_rows_to_chat_examples(tmp_path: Path, kind: str) -> None:
    path = table(tmp_path, kind, qa_columns(5))
    data = bundle(path, None, None, MAPPING)
    assert data.train.examples == 5 and data.train.columns == MAPPING
    examples = read_examples(data.train)
    assert examples == [{"messages": m["messages"]} for m in make_examples(5)]
    assert [n for n, _ in iter_examples(data.train)] == [1, 2, 3, 4, 5]  # rows, from 1


def test_a_system_column_becomes_the_first_message(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "t.parquet", qa_columns(3, system=True))
    [first, *_] = read_examples(bundle(path, None, None, {**MAPPING, "system": "instruction"}).train)
    assert [m["role"] for m in first["messages"]] == ["system", "user", "assistant"]
    assert first["messages"][0]["content"] == "Name the colour as JSON."


def test_a_messages_column_needs_no_mapping(tmp_path: Path) -> None:
    rows = make_examples(4)
    rows[1]["messages"][0]["name"] = "alice"  # Arrow gives every message this key: the others' nulls are dropped
    path = write_parquet(tmp_path / "chat.parquet", {"messages": [r["messages"] for r in rows]})
    assert read_examples(bundle(path, None, None).train) == rows


def test_the_hash_covers_bytes_and_mapping(tmp_path: Path) -> None:
    cols = qa_columns(5, system=True)
    path = write_parquet(tmp_path / "t.parquet", cols)
    plain = bundle(path, None, None, MAPPING).train.sha256
    assert bundle(path, None, None, {**MAPPING, "system": "instruction"}).train.sha256 != plain
    assert bundle(path, None, None, MAPPING).train.sha256 == plain
    cols["answer"][0] = "changed"
    write_parquet(path, cols)
    assert bundle(path, None, None, MAPPING).train.sha256 != plain
    folder = write_folder(tmp_path / "ds", qa_columns(5))
    assert bundle(folder, None, None, MAPPING).train.sha256 == bundle(folder, None, None, MAPPING).train.sha256


@pytest.mark.parametrize("kind", list(WRITERS))
def test_data_check_names_the_row(tmp_path: Path, kind: str) -> None:
    cols = qa_columns(120)
    cols["answer"][16] = None  # row 17: a null cell
    cols["answer"][29] = ""  # row 30 (an empty string; in a CSV an empty cell is null too)
    path = table(tmp_path, kind, cols)
    result = invoke("data", "check", str(path), "--columns", "prompt=question,completion=answer")
    assert result.exit_code == 2, result.output
    assert f"{path.name}:row 17: error: data.columns.completion: column 'answer' is empty (null)" in result.output
    assert "[null-cell]" in result.output
    out = json.loads(invoke("data", "check", str(path), "--columns", "prompt=question,completion=answer",
                            "--json").output)
    lines = {(f["code"], f["line"]) for f in out["findings"]}
    assert ("null-cell", 17) in lines and out["files"][0]["examples"] == 120


def test_data_check_finds_what_the_checks_find_in_jsonl(tmp_path: Path) -> None:
    """A row whose example the chat schema refuses is reported by the same check, on its row."""
    rows = make_examples(120)
    rows[4]["messages"][1]["role"] = "robot"
    path = write_parquet(tmp_path / "chat.parquet", {"messages": [r["messages"] for r in rows]})
    out = json.loads(invoke("data", "check", str(path), "--json").output)
    errors = {(f["code"], f["line"], f["plugin"]) for f in out["findings"] if f["severity"] == "error"}
    assert errors == {("bad-role", 5, "ftp.plugins.chat_format"), ("no-assistant", 5, "ftp.plugins.chat_format")}


@pytest.mark.parametrize("mapping, message", [
    ({"prompt": "qestion", "completion": "answer"},
     "data.columns.prompt: column 'qestion' not in t.parquet; its columns are: question, answer "
     "(did you mean 'question'?)"),
    (None, "t.parquet: no 'messages' column and no data.columns mapping; its columns are: question, answer"),
])
def test_a_missing_column_is_one_line_naming_the_key(tmp_path: Path, mapping: dict[str, str] | None,
                                                     message: str) -> None:
    path = write_parquet(tmp_path / "t.parquet", qa_columns(3))
    with pytest.raises(UserError) as info:
        bundle(path, None, None, mapping)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_cli_errors_exit_2_in_one_line(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "t.parquet", qa_columns(3))
    result = invoke("data", "check", str(path), "--columns", "prompt=q,completion=answer")
    assert result.exit_code == 2 and "data.columns.prompt: column 'q' not in t.parquet" in result.stderr
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text(json.dumps(make_examples(1)[0]) + "\n", encoding="utf-8")
    result = invoke("data", "check", str(jsonl), "--columns", "prompt=q,completion=a")
    assert result.exit_code == 2 and "data.columns: " in result.stderr and "is chat JSONL" in result.stderr
    xlsx = tmp_path / "t.xlsx"
    xlsx.write_bytes(b"PK")
    result = invoke("data", "check", str(xlsx))
    assert result.exit_code == 2 and "unsupported data file type '.xlsx'" in result.stderr
    result = invoke("data", "check", str(path), "--columns", "prompt=question")
    assert result.exit_code == 2 and "--columns prompt=question: give prompt=COLUMN,completion=COLUMN" in result.stderr
    (tmp_path / "plain").mkdir()
    result = invoke("data", "check", str(tmp_path / "plain"))
    assert result.exit_code == 2 and "not one written by datasets' save_to_disk" in result.stderr


def test_a_null_cell_stops_a_step_that_runs_without_validation(tmp_path: Path) -> None:
    cols = qa_columns(3)
    cols["question"][1] = None
    path = write_parquet(tmp_path / "t.parquet", cols)
    with pytest.raises(UserError, match=r"t.parquet:row 2: data.columns.prompt: column 'question' is empty"):
        read_examples(bundle(path, None, None, MAPPING).train)


def test_csv_cells_stay_text(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text('question,answer\n"What is 007, as text?",007\nNA?,NA\n', encoding="utf-8")
    examples = read_examples(bundle(path, None, None, MAPPING).train)
    assert [e["messages"][1]["content"] for e in examples] == ["007", "NA"]


def validate_and_split(project: Path, data_keys: str) -> Path:
    """``ftp run --steps validate,split`` with the project's ``data.train`` line replaced; the run directory."""
    text = (project / "pipeline.yaml").read_text(encoding="utf-8")
    (project / "pipeline.yaml").write_text(text.replace("train: data/train.jsonl", data_keys), encoding="utf-8")
    result = invoke("run", "pipeline.yaml", "--steps", "validate,split")
    assert result.exit_code == 0, result.output + result.stderr
    return next((project / "runs" / "tiny").iterdir())


def test_ftp_run_validate_split_on_parquet(project: Path) -> None:
    path = write_parquet(project / "data" / "train.parquet", qa_columns(60))
    run_dir = validate_and_split(project, "train: data/train.parquet\n  columns: {prompt: question, completion: answer}")
    parts = {p: (run_dir / "data" / f"{p}.jsonl").read_text().splitlines() for p in ("train", "validation", "test")}
    assert sum(map(len, parts.values())) == 60
    written = {json.dumps(json.loads(line)) for lines in parts.values() for line in lines}
    assert written == {json.dumps({"messages": e["messages"]}) for e in make_examples(60)}
    manifest = json.loads((run_dir / "data" / "manifest.json").read_text())
    assert manifest["source"]["path"].endswith("train.parquet") and manifest["source"]["examples"] == 60
    assert path.exists()


def test_given_table_files_become_jsonl_at_split(project: Path) -> None:
    for part, n in (("train", 40), ("validation", 10), ("test", 10)):
        write_parquet(project / "data" / f"{part}.parquet", qa_columns(n))
    run_dir = validate_and_split(project, "train: data/train.parquet\n  validation: data/validation.parquet"
                                          "\n  test: data/test.parquet\n  columns: {prompt: question, completion: answer}")
    assert len((run_dir / "data" / "test.jsonl").read_text().splitlines()) == 10


def test_without_pyarrow_the_error_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    path = write_parquet(tmp_path / "t.parquet", qa_columns(3))
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # as for an Azure-only install without pyarrow
    result = invoke("data", "check", str(path), "--columns", "prompt=question,completion=answer")
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("reading Parquet needs pyarrow: pip install pyarrow (or pip install "
                                          "'ftp[local]')")


def test_help_and_a_jsonl_check_import_neither_pyarrow_nor_datasets(tmp_path: Path) -> None:
    import subprocess
    import sys

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e) + "\n" for e in make_examples(20)), encoding="utf-8")
    for args in (["--help"], ["data", "check", str(data), "--disable", "length"]):
        code = (f"import sys\nfrom ftp.cli import main\ntry:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
                "print('HEAVY', [m for m in ('pyarrow', 'datasets') if m in sys.modules])")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path).stdout
        assert out.strip().splitlines()[-1] == "HEAVY []", args
