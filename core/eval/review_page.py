"""The page of a review sheet: ``review.html``, one self-contained file a reviewer opens offline, and the
row it shows (``SheetRow``: texts only, no candidate names)."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SheetRow:
    """One example as a reviewer sees it: texts only, no candidate names."""

    id: str
    messages: list[dict[str, Any]]
    prompt: str
    reference: str
    response_1: str
    response_2: str

    def texts(self) -> dict[str, str]:
        return {"prompt": self.prompt, "reference": self.reference,
                "response_1": self.response_1, "response_2": self.response_2}


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return json.dumps(content, ensure_ascii=False)


PAGE_CSS = """body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1em 4em;color:#222}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:.6em 0;display:flex;gap:1em;align-items:center}
section{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.6em 1em}section.done{border-color:#3a7}
pre{white-space:pre-wrap;word-wrap:break-word;font:13px/1.4 ui-monospace,monospace;background:#f6f6f6;padding:.5em;margin:.2em 0}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:1em}.role{font-size:12px;color:#666;text-transform:uppercase}
label{margin-right:1.2em}textarea{width:100%;min-height:2.5em}h2{font-size:15px;margin:.2em 0}"""

PAGE_JS = """(function(){
var rows=JSON.parse(document.getElementById('sheet-data').textContent);
var key='ftp-review:'+document.body.getAttribute('data-sheet'),secs=document.querySelectorAll('section');
function st(s){var c=s.querySelector('input:checked');return {choice:c?c.value:'',comment:s.querySelector('textarea').value};}
function update(){var all=[],done=0;secs.forEach(function(s){var x=st(s);all.push(x);if(x.choice)done++;
 s.classList.toggle('done',!!x.choice);});document.getElementById('progress').textContent=done+' of '+secs.length+' chosen';
 try{localStorage.setItem(key,JSON.stringify(all));}catch(e){}return all;}
var saved=[];try{saved=JSON.parse(localStorage.getItem(key)||'[]');}catch(e){}
secs.forEach(function(s,i){var x=saved[i];if(x){var r=s.querySelector('input[value="'+x.choice+'"]');if(r)r.checked=true;
 s.querySelector('textarea').value=x.comment||'';}s.addEventListener('change',update);s.addEventListener('input',update);});
function q(v){return '"'+String(v).replace(/"/g,'""')+'"';}
function csv(){var all=update(),cols=['id','prompt','reference','response_1','response_2','choice','comment'];
 var lines=[cols.map(q).join(',')];rows.forEach(function(r,i){lines.push([r.id,r.prompt,r.reference,r.response_1,
 r.response_2,all[i].choice,all[i].comment].map(q).join(','));});return lines.join('\\r\\n')+'\\r\\n';}
window.ftpReviewCsv=csv;
document.getElementById('download').addEventListener('click',function(){
 var a=document.createElement('a');a.href=URL.createObjectURL(new Blob([csv()],{type:'text/csv;charset=utf-8'}));
 a.download='review.csv';document.body.appendChild(a);a.click();a.remove();});
update();})();"""

LABELS = {"1": "Response 1 is better", "2": "Response 2 is better", "tie": "Tie", "both_bad": "Both bad"}


def _section(i: int, total: int, row: SheetRow) -> str:
    e = html.escape
    turns = "".join(f'<div class="role">{e(str(m.get("role", "?")))}</div><pre>{e(message_text(m))}</pre>'
                    for m in row.messages)
    radios = "".join(f'<label><input type="radio" name="choice-{i}" value="{c}"> {e(t)}</label>' for c, t in LABELS.items())
    return (f'<section id="ex-{i}"><h2>Example {i} of {total} <small>(id {e(row.id)})</small></h2>{turns}'
            f'<div class="role">reference answer</div><pre>{e(row.reference)}</pre>'
            f'<div class="pair"><div><h2>Response 1</h2><pre>{e(row.response_1)}</pre></div>'
            f'<div><h2>Response 2</h2><pre>{e(row.response_2)}</pre></div></div>'
            f'<p>{radios}</p><textarea placeholder="Comment (optional)" aria-label="comment {i}"></textarea></section>')


def render_html(rows: list[SheetRow], sheet_id: str) -> str:
    """One file a reviewer opens offline: inline CSS and JS, every text escaped; the sheet's texts are
    embedded once more as JSON (``<``, ``>``, ``&`` escaped) so the page can write review.csv itself."""
    data = json.dumps([{"id": r.id, **r.texts()} for r in rows], ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    body = "\n".join(_section(i, len(rows), r) for i, r in enumerate(rows, 1))
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>Blind review</title>'
            f'<style>{PAGE_CSS}</style></head>\n<body data-sheet="{html.escape(sheet_id)}"><header><strong>Blind '
            f'side-by-side review</strong><span id="progress">0 of {len(rows)} chosen</span>'
            f'<button id="download" type="button">Download review.csv</button></header>\n'
            "<p>For each example pick the better response (or tie / both bad); the order of the two responses is "
            "random. Choices stay in this browser until you download review.csv and send it back.</p>\n"
            f'{body}\n<script type="application/json" id="sheet-data">{data}</script>\n<script>{PAGE_JS}</script>'
            "</body></html>\n")
