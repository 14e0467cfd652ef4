"""Blind side-by-side review by people: a sheet of (prompt, reference, response 1, response 2) built from
a report folder's ``eval/examples.jsonl``, and the import of the reviewers' choices as a human win rate.

Which candidate is response 1 is a seeded coin per example id (``side``), so the same seed always gives
the same sheet and a different seed another one. The sheet's folder names no candidate; the mapping
lives in the report folder (``review/mapping.json``), never beside the sheet. Imported choices are
resolved against the mapping at import time and kept per reviewer in ``review/reviews.json``; the
summary (``eval.json`` ``human_review``) is recomputed from all of them after every import.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftp.errors import UserError
from ftp.eval.files import EXAMPLES_FILE
from ftp.eval.review_page import SheetRow, message_text, render_html
from ftp.run.store import atomic_write, now

CHOICES = ("1", "2", "tie", "both_bad")
COLUMNS = ("id", "prompt", "reference", "response_1", "response_2", "choice", "comment")
TEXTS = ("prompt", "reference", "response_1", "response_2")
MAPPING_FILE = Path("review") / "mapping.json"
REVIEWS_FILE = Path("review") / "reviews.json"
SHEET_FILES = ("review.html", "review.csv", "label_studio.json", "label_studio.xml", "argilla.json")
METHOD = "percentile bootstrap over examples"


@dataclass
class Judgement:
    """One reviewer's choice on one row, with where it came from (for error messages)."""

    where: str
    id: str
    choice: str
    comment: str
    texts: dict[str, str] = field(default_factory=dict)


# --- export -------------------------------------------------------------------------------------------


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The conversation as one text (CSV and the review tools): a lone user turn as it is, else each
    turn under its ``[role]``."""
    if len(messages) == 1 and messages[0].get("role") == "user":
        return message_text(messages[0])
    return "\n\n".join(f"[{m.get('role', '?')}]\n{message_text(m)}" for m in messages)


def side(seed: int, example_id: str) -> bool:
    """True when the first candidate is response 1: a coin seeded by (seed, id) alone, so an example's
    side does not depend on which other examples are on the sheet (``--limit``) or on their order."""
    return random.Random(f"ftp-review:{seed}:{example_id}").random() < 0.5


def read_answers(folder: Path) -> list[dict[str, Any]]:
    path = folder / EXAMPLES_FILE
    if not path.exists():
        raise UserError(f"{folder} has no {EXAMPLES_FILE}: run the evaluate step first "
                        "(ftp run --resume RUN_ID --steps evaluate), or ftp eval --report DIR")
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except ValueError as exc:
        raise UserError(f"{path}: not JSON lines ({exc}); re-run the evaluate step") from None


def paired_examples(rows: list[dict[str, Any]], candidates: tuple[str, str]) -> list[dict[str, Any]]:
    """Examples answered by both candidates, in test order: {id, messages, reference, answers}."""
    present = sorted({str(r.get("candidate")) for r in rows})
    missing = [c for c in candidates if c not in present]
    if missing:
        raise UserError(f"no answers from {', '.join(missing)} in {EXAMPLES_FILE}; it has: {', '.join(present) or 'none'}"
                        " (pick two with --candidates; evaluate.compare_to: [base] adds the base model)")
    by_index: dict[int, dict[str, Any]] = {}
    for r in rows:
        i = int(r["id"])
        entry = by_index.setdefault(i, {"index": i, "example_id": str(r.get("example_id", i)), "answers": {},
                                        "messages": r.get("prompt") or [], "reference": str(r.get("reference", ""))})
        entry["answers"][str(r.get("candidate"))] = str(r.get("answer", ""))
    both = [by_index[i] for i in sorted(by_index) if all(c in by_index[i]["answers"] for c in candidates)]
    own_ids = [e["example_id"] for e in both]
    unique = len(set(own_ids)) == len(own_ids)  # the data's own ids, unless they repeat: then positions
    return [{**e, "id": e["example_id"] if unique else str(e["index"])} for e in both]


def sheet_rows(examples: list[dict[str, Any]], candidates: tuple[str, str], seed: int) -> tuple[list[SheetRow], dict[str, bool]]:
    rows, first_is_1 = [], {}
    for e in examples:
        flip = side(seed, e["id"])
        one, two = (candidates[0], candidates[1]) if flip else (candidates[1], candidates[0])
        rows.append(SheetRow(id=e["id"], messages=list(e["messages"]), prompt=prompt_text(e["messages"]),
                             reference=e["reference"], response_1=e["answers"][one], response_2=e["answers"][two]))
        first_is_1[e["id"]] = flip
    return rows, first_is_1


def text_hash(text: str) -> str:
    """What a row's text must still hash to on import: line endings and outer blanks do not count
    (spreadsheet programs change them)."""
    norm = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()[:16]


def csv_text(rows: list[SheetRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.id, r.prompt, r.reference, r.response_1, r.response_2, "", ""])
    return out.getvalue()


def label_studio_tasks(rows: list[SheetRow]) -> list[dict[str, Any]]:
    """Label Studio's import format; ``data.id`` is what import joins on (Label Studio renumbers tasks)."""
    return [{"id": i, "data": {"id": r.id, **r.texts()}} for i, r in enumerate(rows, 1)]


LABEL_STUDIO_XML = """<View>
  <Header value="Prompt"/>
  <Text name="prompt" value="$prompt"/>
  <Header value="Reference answer"/>
  <Text name="reference" value="$reference"/>
  <View style="display: grid; grid-template-columns: 1fr 1fr; column-gap: 1em">
    <View><Header value="Response 1"/><Text name="response_1" value="$response_1"/></View>
    <View><Header value="Response 2"/><Text name="response_2" value="$response_2"/></View>
  </View>
  <Header value="Click the better response, or mark a tie or both bad"/>
  <Pairwise name="preference" toName="response_1,response_2"/>
  <Choices name="verdict" toName="prompt" choice="single" showInline="true">
    <Choice value="tie"/>
    <Choice value="both_bad"/>
  </Choices>
  <TextArea name="comment" toName="prompt" placeholder="Comment (optional)" maxSubmissions="1" editable="true"/>
</View>
"""


def argilla_file(rows: list[SheetRow]) -> dict[str, Any]:
    """An import file shaped like Argilla 2.x settings and records (``rg.TextField``, ``rg.LabelQuestion``,
    ``rg.TextQuestion``); ftp writes it only, as Argilla needs a running server."""
    def text_field(name: str, title: str, required: bool = True) -> dict[str, Any]:
        return {"name": name, "title": title, "type": "text", "required": required, "use_markdown": False}

    return {"settings": {
        "guidelines": "Compare the two responses to the prompt; choose 1, 2, tie or both_bad.",
        "fields": [text_field("prompt", "Prompt"), text_field("response_1", "Response 1"),
                   text_field("response_2", "Response 2"), text_field("reference", "Reference answer", False)],
        "questions": [{"name": "preference", "title": "Which response is better?", "type": "label_selection",
                       "labels": list(CHOICES), "required": True},
                      {"name": "comment", "title": "Comment", "type": "text", "required": False}]},
        "records": [{"id": r.id, "fields": r.texts()} for r in rows]}


def export_sheet(folder: Path, out: Path, candidates: tuple[str, str], seed: int, limit: int | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Write the blind sheet into ``out`` and the mapping into ``folder/review/mapping.json``. A mapping
    with the same candidates and seed is extended (an example's side never changes); another seed or
    other candidates replace it only with ``force``, since sheets already sent out would no longer import."""
    if len(set(candidates)) != 2:
        raise UserError(f"--candidates needs two different candidates, got {','.join(candidates)}")
    mapping_path = folder / MAPPING_FILE
    if mapping_path.resolve().is_relative_to(out.resolve()):
        raise UserError(f"--out {out} would hold the mapping ({mapping_path}) and unblind the sheet; pick another folder")
    examples = paired_examples(read_answers(folder), candidates)[:limit]
    if not examples:
        raise UserError(f"no example in {folder / EXAMPLES_FILE} has answers from both {candidates[0]} and {candidates[1]}")
    rows, first_is_1 = sheet_rows(examples, candidates, seed)
    old = read_mapping(folder, required=False)
    if old and (tuple(old["candidates"]) != candidates or old["seed"] != seed) and not force:
        raise UserError(f"{mapping_path} was made with --seed {old['seed']} --candidates {','.join(old['candidates'])}; "
                        "sheets exported with it would not import after a change: keep those or add --force")
    out.mkdir(parents=True, exist_ok=True)
    sheet = csv_text(rows)
    atomic_write(out / "review.csv", sheet)
    sheet_sha = hashlib.sha256(sheet.encode("utf-8")).hexdigest()
    atomic_write(out / "review.html", render_html(rows, sheet_sha[:16]))
    atomic_write(out / "label_studio.json", json.dumps(label_studio_tasks(rows), indent=2, ensure_ascii=False))
    atomic_write(out / "label_studio.xml", LABEL_STUDIO_XML)
    atomic_write(out / "argilla.json", json.dumps(argilla_file(rows), indent=2, ensure_ascii=False))
    keep = old["rows"] if old and not (tuple(old["candidates"]) != candidates or old["seed"] != seed) else {}
    mapping = {"format": 1, "candidates": list(candidates), "seed": seed, "exported_at": now(), "out": str(out.resolve()),
               "sheet_sha256": sheet_sha, "rows": {**keep, **{r.id: _mapping_row(r, candidates, first_is_1[r.id]) for r in rows}}}
    atomic_write(mapping_path, json.dumps(mapping, indent=2, ensure_ascii=False))
    return {"examples": len(rows), "out": str(out), "files": list(SHEET_FILES), "mapping": str(mapping_path),
            "seed": seed, "candidates": list(candidates),
            "response_1": {c: sum(first_is_1[r.id] == (c == candidates[0]) for r in rows) for c in candidates}}


def _mapping_row(row: SheetRow, candidates: tuple[str, str], first_is_1: bool) -> dict[str, Any]:
    one, two = (candidates[0], candidates[1]) if first_is_1 else (candidates[1], candidates[0])
    return {"response_1": one, "response_2": two, "sha256": {k: text_hash(v) for k, v in row.texts().items()}}


def read_mapping(folder: Path, required: bool = True) -> dict[str, Any] | None:
    path = folder / MAPPING_FILE
    if not path.exists():
        if required:
            raise UserError(f"{folder} has no {MAPPING_FILE}: export a sheet first (ftp review export)")
        return None
    return dict(json.loads(path.read_text(encoding="utf-8")))


# --- reading filled sheets ----------------------------------------------------------------------------


def normalise_choice(value: str, where: str) -> str:
    choice = value.strip().lower().replace(" ", "_").replace("-", "_")
    if choice and choice not in CHOICES:
        raise UserError(f"{where}: choice {value!r} is not one of {', '.join(CHOICES)} (or empty to skip)")
    return choice


def read_csv_sheet(path: Path) -> list[Judgement]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel adds a byte-order mark
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the sheet as UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    lacking = [c for c in ("id", "choice", *TEXTS[:1], "response_1", "response_2") if c not in (reader.fieldnames or [])]
    if lacking:
        raise UserError(f"{path}: no column {', '.join(lacking)}; import the review.csv that ftp review export wrote")
    out, start = [], 2
    for row in reader:
        where = f"{path.name} line {start} (id {row.get('id')})"
        start = reader.line_num + 1
        out.append(Judgement(where=where, id=str(row.get("id") or "").strip(),
                             choice=normalise_choice(row.get("choice") or "", where), comment=(row.get("comment") or "").strip(),
                             texts={k: row[k] for k in TEXTS if row.get(k) is not None}))
    return out


def _annotator(annotation: dict[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        return str(who.get("email") or f"label-studio-user-{who.get('id')}")
    return f"label-studio-user-{who}"


def _ls_choice(result: list[dict[str, Any]], where: str) -> tuple[str, str]:
    """(choice, comment) of one Label Studio annotation; a tie / both_bad verdict outranks the pairwise click."""
    picked, verdict, comment = "", "", ""
    for item in result:
        value = item.get("value") or {}
        if item.get("type") == "pairwise":
            picked = {"left": "1", "right": "2"}.get(str(value.get("selected")), "")
        elif item.get("type") == "choices" and value.get("choices"):
            verdict = normalise_choice(str(value["choices"][0]), where)
        elif item.get("type") == "textarea":
            comment = " ".join(str(t) for t in value.get("text") or [])
    return verdict or picked, comment.strip()


def read_label_studio(path: Path) -> dict[str, list[Judgement]]:
    """Label Studio's JSON export, by annotator (cancelled annotations are left out)."""
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a Label Studio JSON export: {exc}") from None
    if not isinstance(tasks, list):
        raise UserError(f"{path}: a Label Studio JSON export is a list of tasks; export with the JSON format")
    out: dict[str, list[Judgement]] = {}
    for task in tasks:
        data = task.get("data") or {}
        texts = {k: str(data[k]) for k in TEXTS if k in data}
        for ann in task.get("annotations") or []:
            if ann.get("was_cancelled"):
                continue
            where = f"{path.name} task {task.get('id')} (id {data.get('id')})"
            choice, comment = _ls_choice(ann.get("result") or [], where)
            out.setdefault(_annotator(ann), []).append(
                Judgement(where=where, id=str(data.get("id", "")), choice=choice, comment=comment, texts=texts))
    return out


def read_sheet(path: Path, reviewer: str | None) -> dict[str, list[Judgement]]:
    """A filled sheet's judgements by reviewer: a CSV names none (``reviewer``, default ``anonymous``);
    a Label Studio export names its annotators, which ``reviewer`` replaces when there is only one."""
    if not path.is_file():
        raise UserError(f"{path}: no such sheet file")
    if path.suffix.lower() != ".json":
        return {reviewer or "anonymous": read_csv_sheet(path)}
    found = read_label_studio(path)
    if reviewer and len(found) > 1:
        raise UserError(f"{path} holds annotations by {len(found)} annotators ({', '.join(sorted(found))}); "
                        "leave out --reviewer to keep them apart")
    return {reviewer: next(iter(found.values()))} if reviewer and found else found


# --- import and the human win rate ----------------------------------------------------------------


def outcomes(judgements: list[Judgement], mapping: dict[str, Any]) -> tuple[dict[str, dict[str, str]], int]:
    """Each decided row as the first candidate's ``win`` / ``loss`` / ``tie`` / ``both_bad``, checked
    against the mapping (unknown id, changed text, a row twice), and the number of empty rows."""
    first, rows = mapping["candidates"][0], mapping["rows"]
    out: dict[str, dict[str, str]] = {}
    seen: set[str] = set()
    skipped = 0
    for j in judgements:
        if j.id not in rows:
            raise UserError(f"{j.where}: id {j.id!r} is not on the exported sheet (review/mapping.json); "
                            "import the sheet this run exported")
        changed = [k for k, h in rows[j.id]["sha256"].items() if k in j.texts and text_hash(j.texts[k]) != h]
        if changed:
            raise UserError(f"{j.where}: {', '.join(changed)} differs from the exported sheet; "
                            "only choice and comment may be edited (or re-export and review again)")
        if j.id in seen:
            raise UserError(f"{j.where}: id {j.id!r} appears twice in the sheet")
        seen.add(j.id)
        if not j.choice:
            skipped += 1
            continue
        if j.choice in ("tie", "both_bad"):
            outcome = j.choice
        else:
            outcome = "win" if rows[j.id][f"response_{j.choice}"] == first else "loss"
        out[j.id] = {"choice": j.choice, "outcome": outcome, "comment": j.comment}
    return out, skipped


def bootstrap_interval(per_example: list[tuple[float, int]], resamples: int, confidence: float,
                       seed: int) -> tuple[float, float]:
    """Percentile bootstrap of the win rate, resampling examples (all of an example's judgements
    together, so several reviewers of one example do not count as independent evidence)."""
    import numpy as np

    points = np.array([w for w, d in per_example if d > 0], dtype=float)
    decided = np.array([d for _, d in per_example if d > 0], dtype=float)
    rng = np.random.default_rng(seed)
    rates, chunk = [], max(1, 4_000_000 // len(points))
    for start in range(0, resamples, chunk):
        idx = rng.integers(0, len(points), size=(min(chunk, resamples - start), len(points)))
        rates.append(points[idx].sum(axis=1) / decided[idx].sum(axis=1))
    alpha = 1 - confidence
    low, high = np.quantile(np.concatenate(rates), [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def summarise(by_example: dict[str, list[str]], resamples: int, confidence: float, seed: int) -> dict[str, Any]:
    """Counts, ``win_rate = (wins + ties/2) / (wins + losses + ties)`` (both_bad counts in ``n`` but in
    neither side of the rate) and its interval; ``None`` when no row preferred a side or tied."""
    flat = [o for judged in by_example.values() for o in judged]
    wins, losses, ties = flat.count("win"), flat.count("loss"), flat.count("tie")
    per_example = [(j.count("win") + j.count("tie") / 2, len(j) - j.count("both_bad")) for j in by_example.values()]
    rate = (wins + ties / 2) / (wins + losses + ties) if wins + losses + ties else None
    low, high = bootstrap_interval(per_example, resamples, confidence, seed) if rate is not None else (None, None)
    return {"wins": wins, "losses": losses, "ties": ties, "both_bad": flat.count("both_bad"), "n": len(flat),
            "examples": len(by_example), "win_rate": rate, "low": low, "high": high}


def human_review(reviews: dict[str, Any], candidates: list[str], resamples: int, confidence: float,
                 seed: int) -> dict[str, Any]:
    """``eval.json``'s ``human_review``: one entry per reviewer and one pooled over all of them."""
    def by_example(names: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name in names:
            for id_, row in reviews[name]["outcomes"].items():
                out.setdefault(id_, []).append(row["outcome"])
        return out

    names = sorted(reviews)
    per = {n: {**summarise(by_example([n]), resamples, confidence, seed), "skipped": reviews[n]["skipped"],
               "imported_at": reviews[n]["imported_at"], "sheet": reviews[n]["sheet"]} for n in names}
    pooled = {**summarise(by_example(names), resamples, confidence, seed), "reviewers": names}
    return {"candidate": candidates[0], "baseline": candidates[1], "method": METHOD, "resamples": resamples,
            "confidence": confidence, "seed": seed, "reviewers": names, "by_reviewer": per, "pooled": pooled,
            "mapping": str(MAPPING_FILE), "updated_at": now()}


def import_sheet(folder: Path, sheet: Path, reviewer: str | None, resamples: int, confidence: float,
                 seed: int) -> tuple[dict[str, Any], dict[str, int]]:
    """Check a filled sheet against the mapping, keep its choices (replacing an earlier import by the
    same reviewer) and return the recomputed ``human_review`` with the rows skipped per reviewer."""
    mapping = read_mapping(folder)
    assert mapping is not None
    path = folder / REVIEWS_FILE
    stored: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"format": 1, "reviewers": {}}
    skipped_now = {}
    for name, judgements in read_sheet(sheet, reviewer).items():
        decided, skipped = outcomes(judgements, mapping)
        stored["reviewers"][name] = {"imported_at": now(), "sheet": str(sheet), "skipped": skipped, "outcomes": decided,
                                     "sheet_sha256": hashlib.sha256(sheet.read_bytes()).hexdigest()}
        skipped_now[name] = skipped
    if not skipped_now:
        raise UserError(f"{sheet}: no annotations to import")
    atomic_write(path, json.dumps(stored, indent=2, ensure_ascii=False))
    return human_review(stored["reviewers"], mapping["candidates"], resamples, confidence, seed), skipped_now
