"""On the real default model: notes written for this test (``data/example_notes.txt``, 20 lines, nothing from the
shipped facts; its last 8) go through ``stmltm consolidate`` (a short recipe: CI time), ``stmltm ask`` answers from
the folder, and plain PEFT loads it."""

import json
from pathlib import Path

import pytest

from stmltm_nb.apps.cli import main

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT / "data" / "example_notes.txt"

pytestmark = pytest.mark.slow


def test_example_notes_are_not_shipped_facts():
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.notes import read_notes

    notes = read_notes(NOTES)
    assert len(notes) == 20
    shipped = {f.text for f in load_facts(contradictions=True)}
    assert not {n.text for n in notes} & shipped


def test_consolidate_and_ask_on_the_default_model(real, tmp_path, capsys):
    """The file's last 8 notes (the hotline's among them), 10 steps: what runs is the whole verb on the real model
    (self-study, teacher, training, the report's three memories, the folder); how well a longer recipe learns is
    measured by ``stmltm measure`` and notebook 03, not here (8 notes and 10 steps: CI time)."""
    notes = tmp_path / "notes.txt"
    from stmltm_nb.memory.notes import read_notes

    notes.write_text("".join(n.text + "\n" for n in read_notes(NOTES)[-8:]), encoding="utf-8")
    out = tmp_path / "cart"
    assert main(["consolidate", str(notes), "--out", str(out), "--steps", "10", "--questions", "1", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["memory"]: r for r in report["rows"]}
    assert rows["STM (all notes in context)"]["heldout"] > rows["no memory"]["heldout"]  # the notes carry facts
    capsys.readouterr()
    assert main(["ask", str(out), "What is the support hotline number?", "--compare", "--as-json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers.values())
    assert "0800" in answers["STM only (8 notes)"]  # the notes in context answer it

    import copy

    from peft import PeftModel

    pm = PeftModel.from_pretrained(copy.deepcopy(real.model), str(out))
    assert pm.peft_config["default"].num_virtual_tokens == 128
