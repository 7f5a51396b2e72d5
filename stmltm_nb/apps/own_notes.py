"""Your own notes, end to end: study them, consolidate them into a cartridge folder with its report, and ask the
folder questions. The ``stmltm consolidate`` and ``stmltm ask`` commands are thin wrappers around these.

A consolidated folder holds the PEFT adapter (``adapter_config.json`` + ``adapter_model.safetensors``), our
``cartridge.json``, and:

- ``stm.jsonl``: the notes it absorbed, as STM items (``STMBuffer.load`` reads it: "STM only" for comparisons);
- ``notes.jsonl``: the studied notes (training questions, held-out question, the answer the checks look for);
- ``training_log.json``: the recipe, loss per step (nats/token), seconds per phase;
- ``report.md`` / ``report.json``: recall on the held-out questions with no memory, with the notes in STM and
  with the cartridge, and retention (general-text NLL, nats/token) with and without it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stmltm_nb.memory.config import ConsolidationConfig
from stmltm_nb.memory.facts import Fact
from stmltm_nb.memory.items import items_jsonl
from stmltm_nb.memory.notes import Note, notes_jsonl
from stmltm_nb.models import LoadedModel

STM_FILE, NOTES_FILE, LOG_FILE, REPORT_MD, REPORT_JSON = (
    "stm.jsonl", "notes.jsonl", "training_log.json", "report.md", "report.json")


def studied_as_notes(facts: Sequence[Fact]) -> list[Note]:
    """Studied notes back as :class:`Note` records (questions and held-out question filled in; the answer only
    when it is gold), for ``notes.jsonl``."""
    return [Note(text=f.text, id=f.id, answer=f.answer if f.answer_is_gold else None,
                 questions=tuple(f.train_questions), heldout_question=f.heldout_question,
                 key=None if f.key == f"note:{f.id}" else f.key) for f in facts]


def _recall(buf: Any, facts: Sequence[Fact], kind: str) -> float:
    from stmltm_nb.metrics.recall import evaluate_recall

    return evaluate_recall(buf, facts, kind, with_nll=False).recall


def _stm_of(lm: LoadedModel, items: list) -> Any:
    """All notes in plain STM, or None when they do not fit the window."""
    from stmltm_nb.memory.items import STMCapacityError
    from stmltm_nb.memory.stm import STMBuffer

    buf = STMBuffer(lm, allow_duplicates=True)
    try:
        buf.extend(items)
    except STMCapacityError:
        return None
    return buf


def consolidate_notes(lm: LoadedModel, notes: Sequence[Note], out: str | Path, cfg: ConsolidationConfig,
                      k: int = 2, progress: bool = True) -> dict[str, Any]:
    """Study ``notes`` (≥ ``k`` training questions each), train a cartridge on them, measure it, and write the
    folder ``out`` atomically (nothing is left behind on failure). Returns the report (recall as fractions,
    NLL in nats/token, seconds)."""
    from stmltm_nb.memory.consolidation import Lesson, RunOptions, consolidate, templates_of
    from stmltm_nb.memory.facts import general_text
    from stmltm_nb.memory.stm import STMBuffer
    from stmltm_nb.memory.study import study_notes
    from stmltm_nb.metrics.recall import text_nll
    from stmltm_nb.models import cache_dir

    facts = study_notes(lm, notes, k=k, seed=cfg.seed, cache=Path(cache_dir()) / "study-cache.json",
                        progress=progress)
    items = [f.to_item() for f in facts]
    run = consolidate(lm, Lesson(items, templates_of(facts)), cfg, RunOptions(progress=progress))
    base, ltm, stm = STMBuffer(lm), run.cartridge.memory(), _stm_of(lm, items)
    text = general_text()
    rows = [{"memory": "no memory", "heldout": _recall(base, facts, "heldout"), "train": _recall(base, facts, "train"),
             "general_text_nll": text_nll(base, text)},
            {"memory": "STM (all notes in context)", "heldout": _recall(stm, facts, "heldout") if stm else None,
             "train": _recall(stm, facts, "train") if stm else None,
             "general_text_nll": text_nll(stm, text) if stm else None},
            {"memory": "cartridge", "heldout": _recall(ltm, facts, "heldout"), "train": _recall(ltm, facts, "train"),
             "general_text_nll": text_nll(ltm, text)}]
    report = {"notes": len(facts), "questions_per_note": k, "rows": rows, "seconds": run.seconds,
              "config": asdict(cfg), "answers_from_notes": sum(f.answer_is_gold for f in facts),
              "answers_as_key_terms": sum(not f.answer_is_gold for f in facts)}
    log = {"config": asdict(cfg), "losses": run.train.losses, "kind_losses": run.train.kind_losses,
           "seconds": run.seconds, "examples": len(run.targets)}
    notes_text = notes_jsonl(studied_as_notes(facts))
    empty = Path(out).is_dir() and not any(Path(out).iterdir())  # an empty folder may be filled; nothing else
    run.cartridge.save_pretrained(out, overwrite=empty, extra_files={
        STM_FILE: items_jsonl(items), NOTES_FILE: notes_text, LOG_FILE: json.dumps(log, indent=1),
        REPORT_JSON: json.dumps(report, indent=1), REPORT_MD: report_markdown(report, facts)})
    return report


def report_markdown(report: dict[str, Any], facts: Sequence[Fact]) -> str:
    """The one-page report of a consolidation of notes (every number from ``report``)."""
    def pct(v: float | None) -> str:
        return "n/a (does not fit the window)" if v is None else f"{v:.2f}"

    def nll(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = ["# Consolidation report", "",
             f"{report['notes']} notes, {report['questions_per_note']} training questions each (self-study where the "
             f"note brought none), one held-out question per note never trained on. Checks look for the note's "
             f"answer ({report['answers_from_notes']} notes) or a key term of the note "
             f"({report['answers_as_key_terms']} notes).", "",
             "| memory | held-out recall | trained recall | general-text NLL (nats/token) |", "|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['memory']} | {pct(r['heldout'])} | {pct(r['train'])} | {nll(r['general_text_nll'])} |")
    s = report["seconds"]
    lines += ["", f"Cost: teacher {s['teacher']:.0f} s + training {s['train']:.0f} s = c_upd {s['total']:.0f} s.",
              "", "## Held-out questions", ""]
    lines += [f"- `{f.id}`: {f.heldout_question} (looks for: {f.answer!r})" for f in facts]
    return "\n".join(lines) + "\n"


def ask(lm: LoadedModel, folder: str | Path, question: str, residual: Sequence[Note] = (),
        compare: bool = False, max_new_tokens: int = 48) -> dict[str, str]:
    """Answer ``question`` from the cartridge in ``folder`` (+ ``residual`` notes in STM on top of it). With
    ``compare``, also from STM only (the absorbed notes of ``stm.jsonl`` + ``residual``) and from no memory.
    Raises :class:`~stmltm_nb.memory.cartridge.CartridgeError` for a folder that is not a cartridge of this model."""
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.items import read_items
    from stmltm_nb.memory.stm import STMBuffer

    cart = Cartridge.from_pretrained(folder, lm)
    items = [n.to_item() for n in residual]
    label = "cartridge" + (f" + {len(items)} residual notes" if items else "")
    out = {label: cart.memory(residual=items, allow_duplicates=True).answer(question, max_new_tokens)}
    if compare:
        stm_file = Path(folder) / STM_FILE
        absorbed = read_items(stm_file) if stm_file.is_file() else []
        stm = _stm_of(lm, absorbed + items)
        out[f"STM only ({len(absorbed) + len(items)} notes)"] = (
            stm.answer(question, max_new_tokens) if stm else "(the notes do not fit the window)")
        out["no memory"] = STMBuffer(lm).answer(question, max_new_tokens)
    return out
