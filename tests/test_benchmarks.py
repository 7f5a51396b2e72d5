"""`benchmarks/run.py --fast` end to end on the tiny random Llama: every table is printed (the numbers themselves
are machine-dependent and never asserted)."""

import runpy
import sys
from pathlib import Path

import pytest

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
                                      "--set", "micro_batches=1", "--out", str(out_file)])
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
    cut = data["cut"]  # --set: the same steps under the cut, timed against the same peak
    assert cut["recipe"] == {"micro_batches": 1} and cut["profile"]["config"]["micro_batches"] == 1
    assert all(len(s["micro_batches"]) == 1 for s in cut["profile"]["steps"]) and len(cut["table"]) == 5
    assert "s/step:" in printed


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


def test_cupd_benchmark_trains_today_and_the_cut_and_pairs_their_recall(tmp_path, tiny_jobs, monkeypatch, capsys):
    """``benchmarks/cupd.py`` on the tiny model (fast sizes): two runs side by side, c_upd of each from its own
    consolidation, the cut's recall against today's question by question; a rerun resumes both files."""
    import json

    out = tmp_path / "cupd.json"
    monkeypatch.setattr(sys, "argv", ["cupd.py", "--fast", "--cut", "steps=4", "--ask-batch", "4", "--out", str(out)])
    runpy.run_path(str(ROOT / "benchmarks" / "cupd.py"), run_name="__main__")
    res = json.loads(out.read_text())
    today = json.loads((tmp_path / "cupd_today.json").read_text())
    cut = json.loads((tmp_path / "cupd_cut.json").read_text())
    assert today["recipe"] == {} and cut["recipe"] == {"steps": 4}
    assert res["today"]["steps"] == 30 and res["cut"]["steps"] == 4
    assert res["cut"]["c_upd_s"] == cut["consolidation"]["seconds"]["total"] > 0
    assert res["today"]["c_upd_s"] == today["consolidation"]["seconds"]["total"] > 0
    assert {(r["memory"], r["questions"]) for r in res["recall"]} >= {("LTM (cartridge)", "heldout"),
                                                                       ("LTM + residual STM", "heldout")}
    ltm = next(r for r in res["recall"] if (r["memory"], r["questions"]) == ("LTM (cartridge)", "heldout"))
    assert ltm["base_lo"] <= ltm["base"] <= ltm["base_hi"]  # today's own interval, from its comparison rows
    assert ltm["lever_lo"] <= ltm["lever"] <= ltm["lever_hi"]
    assert "c_upd, 16 facts: today" in capsys.readouterr().out
    runpy.run_path(str(ROOT / "benchmarks" / "cupd.py"), run_name="__main__")  # resumed: nothing trained again
    assert json.loads(out.read_text())["cut"] == res["cut"]
    assert json.loads((tmp_path / "cupd_cut.json").read_text())["consolidation"] == cut["consolidation"]
    out.unlink()
    monkeypatch.setattr(sys, "argv", ["cupd.py", "--summary-only", "--cut", "steps=4", "--out", str(out)])
    runpy.run_path(str(ROOT / "benchmarks" / "cupd.py"), run_name="__main__")  # from the two files, no model
    assert json.loads(out.read_text())["cut"] == res["cut"]
    monkeypatch.setattr(sys, "argv", ["cupd.py", "--summary-only", "--cut", "steps=5", "--out", str(out)])
    with pytest.raises(SystemExit):  # the cut's file holds another recipe: refused, not summarised
        runpy.run_path(str(ROOT / "benchmarks" / "cupd.py"), run_name="__main__")


def test_cupd_summary_keeps_recall_only_when_no_part_is_worse():
    """The bar's reading (torch-free): a cut whose recall drops on every relation does not keep recall and misses the
    bar, whatever its c_upd; the same run against itself keeps it."""
    sys.path.insert(0, str(ROOT / "tests"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from cupd import summarise
    from test_levers import make_run

    def with_cupd(run, total, steps):
        run["consolidation"] = {"seconds": {"total": total, "teacher": 10.0, "train": total - 10.0},
                                "config": {"steps": steps}}
        return run

    good = with_cupd(make_run(lambda m, k, role, rel, f, w: 1), 1000.0, 400)
    bad = with_cupd(make_run(lambda m, k, role, rel, f, w: int(role == "resid")), 500.0, 200)
    same = summarise(good, with_cupd(make_run(lambda m, k, role, rel, f, w: 1), 500.0, 200), n_boot=200)
    assert same["keeps_recall"] and same["meets_bar"] and same["speedup"] == 2.0
    worse = summarise(good, bad, n_boot=200)
    assert not worse["keeps_recall"] and not worse["meets_bar"] and worse["worse"]
    slow = summarise(good, with_cupd(make_run(lambda m, k, role, rel, f, w: 1), 700.0, 200), n_boot=200)
    assert slow["keeps_recall"] and not slow["meets_bar"]  # over 600 s


def test_first_run_reads_phases_and_warnings_from_the_demo_output():
    """``benchmarks/first_run.py``'s reading (no clone, no model): phases run from one timestamped line to the next,
    what came first is the start-up; carriage-return progress updates split into lines; warnings are found."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from first_run import phase_seconds, split_warnings, timed, warnings_in

    lines = [(0.5, "Converting ..."), (20.0, "[01:00:00] STM recall curve"), (20.1, "bar 1/5"),
             (80.0, "[01:01:00] STM cost curve"), (90.0, "[01:01:10] consolidation: cartridge on 16 facts")]
    got = phase_seconds(lines, 0.0, 200.0)
    assert [p["seconds"] for p in got] == [20.0, 60.0, 10.0, 110.0]
    assert [p["max_silence_s"] for p in got] == pytest.approx([19.5, 59.9, 10.0, 110.0])  # silent stretches
    assert got[1]["phase"] == "STM recall curve" and got[0]["phase"].startswith("start-up")
    assert warnings_in("ok\rUserWarning: x\nfine\nWARNING: y") == ["UserWarning: x", "WARNING: y"]
    pip = "WARNING: Location 'file:///opt/x/simple/torch/' is ignored: it is neither a file nor a directory."
    assert split_warnings(["ok", pip, "  BuildBackendWarning: Editable installation.", pip]) == (
        ["BuildBackendWarning: Editable installation."], 2)  # the machine's pip notices counted apart
    code = "import sys,time; print('a\\rb', flush=True); time.sleep(0.2); print('[01:00:00] c', flush=True)"
    secs, out, rc = timed([sys.executable, "-c", code], ROOT, {})
    assert rc == 0 and [line for _, line in out] == ["a", "b", "[01:00:00] c"] and secs >= 0.2
    assert out[-1][0] >= 0.2 > out[0][0]
