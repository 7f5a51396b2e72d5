"""Your own notes: reading .txt/.jsonl files (every bad input a clear, line-numbered error), self-study questions
(non-empty, about the note, held-out disjoint from training), and device selection."""

import json

import pytest

from stmltm_nb.env import DeviceError, default_dtype, pick_device
from stmltm_nb.memory.notes import Note, NotesError, check_note_lengths, notes_jsonl, read_notes
from stmltm_nb.memory.study import MAX_K, key_term, note_topic, study_note, study_notes, words

NOTES = ["The team meeting moved to Thursday at 3 pm in room B12.",
         "Our Wi-Fi password is hunter2 until the end of March.",
         "Alice prefers green tea over coffee in the morning."]


def test_txt_one_note_per_line_blank_lines_ignored(tmp_path):
    p = tmp_path / "notes.txt"
    p.write_text(f"{NOTES[0]}\n\n   \n{NOTES[1]}\n{NOTES[2]}\n", encoding="utf-8")
    notes = read_notes(p)
    assert [n.text for n in notes] == NOTES
    assert [n.id for n in notes] == ["n001", "n002", "n003"]
    assert [n.line for n in notes] == [1, 4, 5]


def test_jsonl_fields_and_round_trip(tmp_path):
    p = tmp_path / "notes.jsonl"
    rows = [{"text": NOTES[0], "id": "meet", "answer": "Thursday", "questions": ["When is the team meeting?"],
             "heldout_question": "On which day do we meet?", "key": "meeting:day", "time": 5.0},
            {"text": NOTES[1]}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    notes = read_notes(p)
    assert notes[0] == Note(text=NOTES[0], id="meet", answer="Thursday", questions=("When is the team meeting?",),
                            heldout_question="On which day do we meet?", key="meeting:day", time=5.0)
    assert notes[1].id == "n001" and notes[1].questions == ()  # automatic ids number the notes without one
    again = tmp_path / "again.jsonl"
    again.write_text(notes_jsonl(notes), encoding="utf-8")
    assert read_notes(again) == notes
    assert notes[0].to_item().answer == "Thursday" and notes[0].to_item().source == "notes"


@pytest.mark.parametrize("name,content,message", [
    ("empty.txt", b"", "empty"),
    ("blank.txt", b"\n  \n\n", "no notes"),
    ("bin.txt", b"abc\x00\x01\x02", "binary"),
    ("latin.txt", "caf\u00e9 ok\n".encode("latin-1"), "line 1: not valid UTF-8"),
    ("late.txt", b"fine\nalso fine\nbad \xff byte\n", "line 3: not valid UTF-8"),
    ("list.jsonl", b'{"text": "ok"}\n[1, 2]\n', "line 2: each line must be a JSON object"),
    ("notext.jsonl", b'{"id": "a"}\n', "line 1: the object has no 'text' field"),
    ("badjson.jsonl", b'{"text": "ok"}\n{"text": \n', "line 2: not valid JSON"),
    ("dup.jsonl", b'{"text": "a", "id": "x"}\n{"text": "b", "id": "x"}\n', "line 2: duplicate id 'x'"),
    ("unknown.jsonl", b'{"text": "a", "colour": "red"}\n', "unknown fields ['colour']"),
    ("qs.jsonl", b'{"text": "a", "questions": "why?"}\n', "'questions' must be a list"),
    ("badid.jsonl", b'{"text": "a", "id": "../etc"}\n', "line 1: STM item id"),
    ("ws.jsonl", b'{"text": "\\u200b  "}\n', "line 1: STM item text is empty"),
])
def test_bad_notes_files_name_the_problem_and_the_line(tmp_path, name, content, message):
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(NotesError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_notes(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(NotesError, match="no such file"):
        read_notes(tmp_path / "nope.txt")
    with pytest.raises(NotesError, match="not a file"):
        read_notes(tmp_path)


def test_a_note_longer_than_the_window_is_refused(tokenizer):
    notes = [Note(text="short note", id="a", line=1), Note(text="word " * 400, id="b", line=7)]
    check_note_lengths(notes[:1], tokenizer, 100)
    with pytest.raises(NotesError, match=r"line 7 \(note 'b'\): \d+ tokens is longer"):
        check_note_lengths(notes, tokenizer, 100)


def test_topic_and_key_term_heuristics():
    assert note_topic(Note(text=NOTES[0], id="a")) == "team meeting"
    assert note_topic(Note(text=NOTES[1], id="a")) == "Wi-Fi password"
    assert note_topic(Note(text="x", id="a", key="drink:Alice")) == "Alice"
    # a word of the reply that is in the note and not in the question; numbers and names first
    assert key_term(NOTES[0], "The meeting is on Thursday at 3 pm.", "When is the team meeting?") == "Thursday"
    assert key_term(NOTES[1], "It is hunter2.", "What is the Wi-Fi password?") == "hunter2"
    # a reply with nothing from the note: the note's own most distinctive word
    assert key_term(NOTES[2], "I do not know.", "What does Alice drink?") in words(NOTES[2])
    assert key_term("Hi.", "", "Hi?")


def test_self_study_gives_every_note_k_questions_and_a_disjoint_heldout_one(tiny):
    """The tiny random model writes nothing usable: the generic probes alone must still give every note k
    training questions about it and one held-out question that is not among them."""
    notes = [Note(text=t, id=f"n{i}") for i, t in enumerate(NOTES)]
    for k in (1, 2, MAX_K):
        facts = study_notes(tiny, notes, k=k)
        for n, f in zip(notes, facts):
            assert len(f.train_questions) >= k and all(q.strip() for q in f.train_questions)
            assert f.heldout_question and f.heldout_question not in f.train_questions
            topic = note_topic(n)
            assert all(topic in q for q in f.train_questions + (f.heldout_question,))
            assert f.answer and not f.answer_is_gold and f.answer.lower() in n.text.lower()
            assert f.to_item().answer is None  # a key term is never a training target
    with pytest.raises(ValueError, match="k"):
        study_note(tiny, notes[0], k=MAX_K + 1)


def test_self_study_keeps_what_the_note_brings(tiny, tmp_path):
    n = Note(text=NOTES[0], id="meet", answer="Thursday", questions=("When is the meeting?", "Which day?"),
             heldout_question="On which day do we meet?")
    f = study_note(tiny, n, k=2)
    assert f.train_questions == ("When is the meeting?", "Which day?")
    assert f.heldout_question == "On which day do we meet?" and f.answer == "Thursday" and f.answer_is_gold
    cache = tmp_path / "study.json"
    first = study_notes(tiny, [n], cache=cache)
    assert json.loads(cache.read_text())
    assert study_notes(tiny, [n], cache=cache) == first


@pytest.mark.parametrize("have,want", [({"cuda": True, "mps": True}, "cuda"), ({"cuda": False, "mps": True}, "mps"),
                                       ({"cuda": False, "mps": False}, "cpu")])
def test_auto_device_prefers_cuda_then_mps_then_cpu(have, want):
    assert pick_device("auto", have) == want
    assert pick_device("cpu", have) == "cpu"


def test_a_missing_or_unknown_device_is_refused():
    with pytest.raises(DeviceError, match="no CUDA device"):
        pick_device("cuda", {"cuda": False, "mps": False})
    with pytest.raises(DeviceError, match="no MPS device"):
        pick_device("mps", {"cuda": True, "mps": False})
    assert pick_device("cuda:1", {"cuda": True}) == "cuda:1"
    for bad in ("gpu", "tpu", "cpu:0", ""):
        with pytest.raises(DeviceError, match="unknown device"):
            pick_device(bad, {})


def test_dtype_per_device():
    assert default_dtype("cpu") == "float32" and default_dtype("mps") == "float32"
    assert default_dtype("cuda", bf16_ok=True) == "bfloat16"
    assert default_dtype("cuda:0", bf16_ok=False) == "float32"


def test_load_model_refuses_a_missing_gpu_before_loading(monkeypatch):
    from stmltm_nb import env, models

    monkeypatch.setattr(env, "available_devices", lambda: {"cuda": False, "mps": False})
    monkeypatch.setattr(models, "resolve_model_path", lambda name: pytest.fail("the model was looked up"))
    with pytest.raises(DeviceError):
        models.load_model("default", device="cuda")


def test_every_model_input_the_package_builds_follows_the_model_device():
    """What cannot run here (a GPU) is still written for it: every token tensor fed to a model is created on
    ``model.device`` (or moved there, for training batches)."""
    import re
    from pathlib import Path

    import stmltm_nb

    pkg = Path(stmltm_nb.__file__).parent
    offenders = []
    for f in pkg.rglob("*.py"):
        for i, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"(input_ids=|ids = )torch\.tensor\(", line) and "device=" not in line:
                offenders.append(f"{f.relative_to(pkg)}:{i}")
    assert offenders == []
    batching = (pkg / "memory" / "batching.py").read_text()
    assert "t.to(device)" in batching  # training batches go to the cartridge's device


def test_a_heldout_question_that_is_also_a_training_question_is_kept_out_of_training(tiny):
    n = Note(text=NOTES[0], id="m", questions=("When is the meeting?",), heldout_question="When is the meeting?")
    f = study_note(tiny, n, k=1)
    assert f.heldout_question == "When is the meeting?"
    assert len(f.train_questions) >= 1 and "When is the meeting?" not in f.train_questions


def test_automatic_ids_never_collide_with_ids_the_file_uses(tmp_path):
    p = tmp_path / "n.jsonl"
    p.write_text('{"text": "first", "id": "n002"}\n{"text": "second"}\n{"text": "third"}\n')
    assert [n.id for n in read_notes(p)] == ["n002", "n001", "n003"]


def test_a_corrupt_study_cache_is_recomputed(tiny, tmp_path):
    cache = tmp_path / "study.json"
    for bad in ("[]", '{"x": 1}', "{torn"):
        cache.write_text(bad)
        facts = study_notes(tiny, [Note(text=NOTES[1], id="w")], cache=cache)
        assert facts[0].train_questions
