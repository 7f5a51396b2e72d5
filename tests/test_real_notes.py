"""On the real default model: a 20-line notes file written for this test (``data/example_notes.txt``, nothing from
the shipped facts) goes through ``stmltm consolidate`` (a short recipe: CI time), ``stmltm ask`` answers from the
folder, and plain PEFT loads it."""

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
    out = tmp_path / "cart"
    assert main(["consolidate", str(NOTES), "--out", str(out), "--steps", "40", "--questions", "1", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["memory"]: r for r in report["rows"]}
    assert rows["STM (all notes in context)"]["heldout"] > rows["no memory"]["heldout"]  # the notes carry facts
    capsys.readouterr()
    assert main(["ask", str(out), "What is the support hotline number?", "--compare", "--as-json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers.values())
    assert "0800" in answers["STM only (20 notes)"]  # the notes in context answer it

    import copy

    from peft import PeftModel

    pm = PeftModel.from_pretrained(copy.deepcopy(real.model), str(out))
    assert pm.peft_config["default"].num_virtual_tokens == 128
