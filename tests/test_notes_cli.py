"""The practitioner's verbs on the tiny model: ``stmltm consolidate NOTES --out DIR``, ``stmltm ask DIR``,
``stmltm measure --notes``, ``stmltm stream NOTES --root DIR``; every bad input exits 2 and writes nothing; the
folder is a PEFT adapter folder; the controller never marks an untrained note absorbed."""

import json
from pathlib import Path

import pytest
from conftest import link_converted_model

from stmltm_nb.apps.cli import main

NOTES = ["The team meeting moved to Thursday at 3 pm in room B12.",
         "Our Wi-Fi password is hunter2 until the end of March.",
         "Alice prefers green tea over coffee in the morning.",
         "The spare office key hangs behind the blue cabinet.",
         "Project Falcon ships its first beta on 14 June.",
         "The printer on floor two needs toner cartridge HP-305."]


@pytest.fixture
def on_tiny(tmp_path, tiny_jobs):
    notes = tmp_path / "notes.txt"
    notes.write_text("\n".join(NOTES) + "\n", encoding="utf-8")
    return tmp_path, notes


@pytest.fixture(scope="module")
def consolidated(tiny, tmp_path_factory, converted_model):
    """One consolidation of NOTES on the tiny model, read by the tests below (none writes into the folder); the
    tiny model stays patched in while they run (``stmltm ask`` loads it)."""
    import stmltm_nb.models as models

    tmp = tmp_path_factory.mktemp("consolidated")
    notes = tmp / "notes.txt"
    notes.write_text("\n".join(NOTES) + "\n", encoding="utf-8")
    out = tmp / "cart"
    link_converted_model(tmp / "cache", converted_model)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(models, "load_model", lambda name="default", **kw: tiny)
        mp.setenv("STMLTM_CACHE", str(tmp / "cache"))
        assert main(["consolidate", str(notes), "--out", str(out), "--p", "8", "--steps", "3", "--quiet"]) == 0
        yield tmp, notes, out


def test_consolidate_writes_a_complete_cartridge_folder(consolidated):
    _, _, out = consolidated
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "cartridge.json", "stm.jsonl", "notes.jsonl",
            "training_log.json", "report.md", "report.json"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["notes"] == len(NOTES) and [r["memory"] for r in report["rows"]] == [
        "no memory", "STM (all notes in context)", "cartridge"]
    assert all(0 <= r["heldout"] <= 1 for r in report["rows"])
    log = json.loads((out / "training_log.json").read_text())
    assert len(log["losses"]) == 3 and log["config"]["p"] == 8
    from stmltm_nb.memory.items import read_items
    from stmltm_nb.memory.notes import read_notes

    studied = read_notes(out / "notes.jsonl")
    assert [n.text for n in studied] == NOTES and all(len(n.questions) >= 2 and n.heldout_question for n in studied)
    assert [it.text for it in read_items(out / "stm.jsonl")] == NOTES
    assert "| cartridge |" in (out / "report.md").read_text()


def test_plain_peft_loads_the_folder(consolidated, tiny):
    """The folder is a PEFT adapter folder: ``PeftModel.from_pretrained`` restores the same prefix."""
    import copy

    import torch
    from peft import PeftModel
    from safetensors.torch import load_file

    _, _, out = consolidated
    pm = PeftModel.from_pretrained(copy.deepcopy(tiny.model), str(out))
    enc = pm.prompt_encoder[pm.active_adapter]
    saved = load_file(str(out / "adapter_model.safetensors"))["prompt_embeddings"]
    assert torch.equal(enc.embedding.weight.detach() if hasattr(enc, "embedding") else enc.weight.detach(), saved)


def test_ask_answers_from_the_cartridge_and_compares(consolidated, capsys):
    tmp, _, out = consolidated
    resid = tmp / "newer.jsonl"
    resid.write_text(json.dumps({"text": "The canteen closes at 2 pm on Fridays.", "id": "canteen"}) + "\n")
    assert main(["ask", str(out), "When is the team meeting?", "--notes", str(resid), "--compare",
                 "--as-json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert list(answers) == ["cartridge + 1 residual notes", "STM only (7 notes)", "no memory"]
    assert all(isinstance(v, str) for v in answers.values())
    assert main(["ask", str(out), "Where is the key?"]) == 0
    assert capsys.readouterr().out.strip() != ""


def test_measure_on_notes_writes_curves_the_tuner_loads(on_tiny, capsys):
    tmp, notes = on_tiny
    out = tmp / "curves.json"
    assert main(["measure", "--notes", str(notes), "--fast", "--out", str(out)]) == 0
    curves = json.loads(out.read_text())
    assert curves["source"] == {"notes": 6, "consolidated": 5, "residual": 1}
    assert "governance" not in curves and max(r["n"] for r in curves["recall"]["pooled"]) <= 6
    from stmltm_nb.apps.tuner import Tuner

    Tuner(curves)  # the tuner builds its sliders from this file


def test_stream_over_notes_resumes_and_loses_nothing(on_tiny, capsys):
    tmp, notes = on_tiny
    root, log = tmp / "ctl", tmp / "events.jsonl"
    args = ["stream", str(notes), "--root", str(root), "--out", str(log), "--check-every", "3", "--p", "8",
            "--steps", "2", "--questions", "1"]
    assert main(args) == 0
    first = [json.loads(x) for x in log.read_text().splitlines()]
    assert first[-1]["event"] == "summary" and first[-1]["items"] == 6 and first[-1]["lost"] == 0
    assert (root / "study.json").is_file()
    assert main(args) == 0  # a second run on the same folder skips what is logged
    second = [json.loads(x) for x in log.read_text().splitlines()]
    assert second[-1]["items"] == 6 and second[-1]["lost"] == 0


@pytest.mark.parametrize("argv,message", [
    (["consolidate", "{empty}", "--out", "{tmp}/c"], "empty"),
    (["consolidate", "{binary}", "--out", "{tmp}/c"], "binary"),
    (["consolidate", "{notes}", "--out", "{full}"], "not an empty folder"),
    (["consolidate", "{notes}", "--out", "{tmp}/c", "--device", "cuda"], "no CUDA device"),
    (["consolidate", "{notes}", "--out", "{tmp}/c", "--questions", "0"], "--questions"),
    (["consolidate", "{long}", "--out", "{tmp}/c"], "longer than the window"),
    (["consolidate", "{latin}", "--out", "{tmp}/c"], "line 2: not valid UTF-8"),
    (["consolidate", "{badjsonl}", "--out", "{tmp}/c"], "line 2: each line must be a JSON object"),
    (["consolidate", "{dup}", "--out", "{tmp}/c"], "duplicate id 'x'"),
    (["consolidate", "{notes}", "--out", "{tmp}/new/deep/c", "--device", "cuda"], "no CUDA device"),
    (["measure", "--notes", "{three}", "--out", "{tmp}/m.json"], "at least 4 notes"),
    (["ask", "{tmp}", "hello?"], "not a saved cartridge"),
    (["ask", "{foreign}", "hello?"], "another base model"),
    (["measure", "--notes", "{empty}", "--out", "{tmp}/m.json"], "empty"),
    (["stream", "{binary}", "--root", "{tmp}/r", "--out", "{tmp}/e.jsonl"], "binary"),
])
def test_bad_input_exits_2_and_writes_nothing(on_tiny, capsys, monkeypatch, tiny, argv, message):
    from stmltm_nb import env

    monkeypatch.setattr(env, "available_devices", lambda: {"cuda": False, "mps": False})
    tmp, notes = on_tiny
    (tmp / "empty.txt").write_bytes(b"")
    (tmp / "bin.txt").write_bytes(b"\x00\x01")
    (tmp / "latin.txt").write_bytes(b"fine\ncaf\xe9\n")
    (tmp / "bad.jsonl").write_text('{"text": "ok"}\n"just a string"\n')
    (tmp / "dup.jsonl").write_text('{"text": "a", "id": "x"}\n{"text": "b", "id": "x"}\n')
    (tmp / "three.txt").write_text("one note\ntwo notes\nthree notes\n")
    (tmp / "long.txt").write_text("A short note.\n" + "word " * 9000 + "\n", encoding="utf-8")
    full = tmp / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    foreign = tmp / "foreign"
    if "{foreign}" in argv:  # a cartridge of another model (another random tiny Llama)
        from stmltm_nb.memory.cartridge import Cartridge
        from stmltm_nb.models import tiny_llama

        other = tiny_llama(tiny.tokenizer, seed=5)
        Cartridge.create(other, p=4, init="random").save_pretrained(foreign)
    before = sorted(str(p) for p in tmp.rglob("*") if "cache" not in p.parts)
    subs = {"{empty}": str(tmp / "empty.txt"), "{binary}": str(tmp / "bin.txt"), "{notes}": str(notes),
            "{full}": str(full), "{tmp}": str(tmp), "{foreign}": str(foreign), "{long}": str(tmp / "long.txt"),
            "{latin}": str(tmp / "latin.txt"), "{badjsonl}": str(tmp / "bad.jsonl"), "{dup}": str(tmp / "dup.jsonl"),
            "{three}": str(tmp / "three.txt")}
    args = []
    for a in argv:
        for k, v in subs.items():
            a = a.replace(k, v)
        args.append(a)
    assert main(args) == 2
    assert message in capsys.readouterr().err
    after = sorted(str(p) for p in tmp.rglob("*") if "cache" not in p.parts)
    assert after == before and (full / "keep.txt").read_text() == "mine"
    assert not list(Path(tmp).glob(".*tmp*"))


def test_six_notes_with_templates_for_two_none_is_lost(tiny, tmp_path):
    """The reported case: 6 notes, templates for 2, no answers. Every note is either trained on or kept in
    residual STM; an untrained note is never marked absorbed, and the log says why."""
    from stmltm_nb.decision.controller import Controller, ControllerConfig
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.notes import Note
    from stmltm_nb.memory.questions import ItemQuestions

    notes = [Note(text=t, id=f"n{i}") for i, t in enumerate(NOTES)]
    questions = {"n0": ItemQuestions(["When is the team meeting?"]), "n1": ItemQuestions(["What is the Wi-Fi password?"])}
    with Controller(tiny, tmp_path / "ctl", questions,
                    config=ControllerConfig(check_every=100, snr_gate=False),
                    consolidation=ConsolidationConfig(p=8, steps=2)) as ctl:
        for n in notes:
            ctl.ingest(n.to_item())
        res = ctl.consolidate()
        absorbed = ctl.absorbed_ids()
        assert absorbed <= {"n0", "n1"}
        assert {it.id for it in ctl.residual()} | absorbed == {n.id for n in notes}
        assert ctl.lost_ids() == []
        start = [e for e in ctl.events() if e["event"] == "consolidate.start"][-1]
        assert start["new_items"] == ["n0", "n1"]
        assert start["not_trainable"] == {f"n{i}": "no training question" for i in range(2, 6)}
        assert res["committed"] is False or set(res["holdout_passed"]) <= {"n0", "n1"}
    with Controller(tiny, tmp_path / "ctl2", {},
                    config=ControllerConfig(check_every=100, snr_gate=False),
                    consolidation=ConsolidationConfig(p=8, steps=2)) as ctl:
        for n in notes:
            ctl.ingest(n.to_item())
        res = ctl.consolidate()  # nothing trainable: rejected without training, nothing absorbed
        assert res["committed"] is False and res["reason"] == "absorbed nothing"
        assert len(ctl.residual()) == 6 and ctl.state.version == 0
