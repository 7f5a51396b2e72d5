"""`benchmarks/run.py --fast` end to end on the tiny random Llama: every table is printed (the numbers themselves
are machine-dependent and never asserted)."""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_run_on_the_tiny_model(monkeypatch, capsys, tiny_jobs):

    monkeypatch.setattr(sys, "argv", ["run.py", "--fast"])
    try:
        runpy.run_path(str(ROOT / "benchmarks" / "run.py"), run_name="__main__")
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    for header in ("| STM n items | STM tokens n·b", "| STM n items | append one item (incremental)",
                   "| c_upd on 16 facts | value |", "| switching evaluator | decisions/s | ratio |",
                   "| +4 facts into a 8-fact cartridge | c_upd, s |", "| incremental update (3 steps, "):
        assert header in out
    assert out.count("\n| 16 |") == 2 and out.count("\n| 64 |") == 2


def test_incremental_retry_keeps_the_tried_update_and_reuses_measured_full_phases(tmp_path, tiny_jobs):
    import json
    import shutil

    import pytest


    sys.path.insert(0, str(ROOT / "benchmarks"))
    from incremental import run

    out, work = tmp_path / "inc.json", tmp_path / "work"
    sets = ["steps=2", "update_steps=2", "batch_size=4", "p=8"]
    first = run("tune", 4, 2, out, str(work), sets)
    full_all = dict(first["full_all"])
    shutil.rmtree(work / "full_all")  # measured: a retry must not retrain it
    second = run("tune", 4, 2, out, str(work), ["steps=2", "update_steps=3", "batch_size=4", "p=8"],
                 retry_update=True)
    assert second["update"]["steps"] == 3
    assert [t["config"]["update_steps"] for t in second["update_tries"]] == [2]
    assert second["update_tries"][0]["recall_new"] == first["update"]["recall_new"]
    assert second["full_all"] == {**full_all, "c_upd_same_teacher_rate_s": second["full_all"]["c_upd_same_teacher_rate_s"]}
    assert not (work / "full_all").exists()
    before = out.read_text()
    with pytest.raises(ValueError, match="another recipe"):
        run("tune", 4, 2, out, str(work), ["steps=3", "update_steps=3", "batch_size=4", "p=8"])
    with pytest.raises(ValueError, match="--retry-update"):  # other update settings: never credited to the stored row
        run("tune", 4, 2, out, str(work), ["steps=2", "update_steps=4", "batch_size=4", "p=8"])
    with pytest.raises(ValueError, match="split"):
        run("tune", 4, 3, out, str(work), ["steps=2", "update_steps=3", "batch_size=4", "p=8"])
    assert out.read_text() == before and json.loads(before)["update"]["steps"] == 3


def test_the_roofline_runs_on_the_tiny_model_and_its_flops_match_its_micro_batches(tiny, tmp_path, monkeypatch,
                                                                                    capsys, tiny_jobs):
    """`benchmarks/roofline.py` end to end on the tiny Llama: every phase is timed, the forward FLOPs of each step
    are the count of its own micro-batches, and the JSON holds the peak and the table (numbers not asserted)."""
    import json

    from stmltm_nb.metrics.flops import ModelShape, step_flops

    out_file = tmp_path / "roofline.json"
    monkeypatch.setattr(sys, "argv", ["roofline.py", "--facts", "3", "--steps", "2", "--repeats", "1",
                                      "--out", str(out_file)])
    runpy.run_path(str(ROOT / "benchmarks" / "roofline.py"), run_name="__main__")
    printed = capsys.readouterr().out
    data = json.loads(out_file.read_text())
    assert [r["phase"] for r in data["table"]] == ["data", "forward", "backward", "optimizer", "step"]
    assert "of peak" in printed and len(data["profile"]["steps"]) == 2
    shape = ModelShape.from_config(tiny.model.config)
    assert data["profile"]["shape"] == {k: getattr(shape, k) for k in data["profile"]["shape"]}
    for step in data["profile"]["steps"]:
        want = step_flops(shape, [tuple(m) for m in step["micro_batches"]], data["profile"]["prefix_tokens"])
        assert step["flops_forward"] == sum(want.forward.values()) > 0
        assert all(v >= 0 for v in step["seconds"].values()) and step["seconds"]["forward"] > 0


def test_ask_batch_benchmark_compares_record_by_record(tmp_path, tiny_jobs, monkeypatch, capsys):
    """``benchmarks/ask_batch.py``: a lever's run asked one by one, its cached cartridge asked again in batches,
    every record compared, and the demo's STM recall curve both ways (the tiny model answers alike both ways)."""
    import json

    from stmltm_nb.apps.cli import main

    run = tmp_path / "lever.json"
    assert main(["measure", "--fast", "--seeds", "0", "--set", "steps=5", "--cartridges-only", "--out", str(run)]) == 0
    out = tmp_path / "check.json"
    monkeypatch.setattr(sys, "argv", ["ask_batch.py", "--run", str(run), "--batch", "4", "--curve", "--out", str(out)])
    runpy.run_path(str(ROOT / "benchmarks" / "ask_batch.py"), run_name="__main__")
    res = json.loads(out.read_text())
    asked = json.loads(run.read_text())["evaluation"]["seed0"]
    assert res["questions"] == len(asked) > 0 and res["batch"] == 4
    assert res["hits_differ"] == 0 and res["max_nll_diff"] == 0.0
    assert res["recall_curve"]["rows_equal"] is True and res["recall_curve"]["questions"] > 0
    printed = capsys.readouterr().out
    assert "questions: 0 hits differ" in printed and "STM recall curve (demo sizes)" in printed
    monkeypatch.setattr(sys, "argv", ["ask_batch.py", "--run", str(out)])  # not a lever's run: refused by name
    try:
        runpy.run_path(str(ROOT / "benchmarks" / "ask_batch.py"), run_name="__main__")
    except SystemExit as e:
        assert "not a cartridges-only run" in str(e.code)
    else:
        raise AssertionError("a file that is no lever's run was accepted")
