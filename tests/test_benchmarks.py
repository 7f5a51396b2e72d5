"""`benchmarks/run.py --fast` end to end on the tiny random Llama: every table is printed (the numbers themselves
are machine-dependent and never asserted)."""

import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_benchmarks_run_on_the_tiny_model(tiny, tmp_path, monkeypatch, capsys):
    import stmltm_nb.models as models

    monkeypatch.setattr(models, "load_model", lambda name="default", **kw: tiny)
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path))
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
