"""The long jobs end to end on the tiny random Llama: ``stmltm measure`` (with resume) and ``stmltm demo`` run the
same section functions and write JSON-safe results."""

import json
import math

import numpy as np
import pytest

from stmltm_nb.apps.log import json_clean, log


def test_json_clean_makes_structures_json_safe(capsys):
    raw = {1: [np.float32(0.5), float("nan"), (np.int64(3), float("-inf"))], "s": "text", "n": None}
    clean = json_clean(raw)
    assert clean == {"1": [0.5, None, [3, None]], "s": "text", "n": None}
    assert type(clean["1"][0]) is float and type(clean["1"][2][0]) is int
    json.dumps(clean, allow_nan=False)
    log("hello")
    out = capsys.readouterr().out
    assert out.endswith("] hello\n") and out.startswith("[") and len(out) == len("[HH:MM:SS] hello\n")


def rec_rows(res, n):
    return [r for r in res["recall"]["by_position"] if r["n"] == n]


def test_measure_writes_every_section_and_resumes(tiny_jobs):
    from stmltm_nb.apps.measure_job import run_measurements

    out = tiny_jobs / "curves.json"
    res = run_measurements(fast=True, out=out, progress=False)
    sections = ("recall", "cost", "retrieval", "consolidation", "consolidation_seed1", "signal", "cartridge",
                "compression", "retention", "governance")
    from stmltm_nb.apps.measure_job import EVAL_ORDER

    parts = ("evaluation.seed0", "evaluation.seed1", *(f"evaluation.{m}" for m in EVAL_ORDER))
    assert all(s in res for s in sections) and set(res["section_seconds"]) == set(sections) | set(parts)
    assert res["schema_version"] == 2 and res["seeds"] == [0, 1]
    pooled_ids = {r["n"]: [i for p in rec_rows(res, r["n"]) for i in p["facts"]] for r in res["recall"]["pooled"]}
    assert all(len(ids) == len(set(ids)) for ids in pooled_ids.values())  # distinct questions at every size
    rows = {(r["mode"], r["questions"]): r for r in res["comparison"]}
    served = rows[("LTM + residual STM", "heldout")]
    assert len(served["seeds"]) == 2 and served["lo"] <= served["recall"] <= served["hi"]
    assert ("STM + retrieval", "heldout") in rows and ("teacher (fact alone)", "train") in rows
    assert res["retrieval"]["library"] == "bm25s" and "fit_linear" in res["retrieval"]["cost"]
    ret = {r["mode"]: r for r in res["retention"]["rows"]}
    assert res["retention"]["passages"] >= 10 and set(ret) == {"no memory", "LTM (step 0)", "LTM (cartridge)",
                                                               "LTM + residual STM"}
    assert len(ret["LTM (cartridge)"]["seeds"]) == 2 and ret["no memory"]["delta_nll"] == 0
    assert json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == res
    rec = res["recall"]
    assert [r["n"] for r in rec["pooled"]] == [1, 4, 16] and {r["position"] for r in rec["heldout"]} == {"middle"}
    assert rec["best_fit"] == rec["fits"][0]["model"]
    assert {"fit_cached_linear", "fit_stateless_linear", "fit_stateless_quadratic"} <= set(res["cost"])
    cons = res["consolidation"]
    assert len(cons["losses"]) == cons["config"]["steps"] == 30 and "probe" in cons and cons["flops"]["total_flops"] > 0
    assert res["compression"]["dl"]["bits"] > 0 and len(res["compression"]["item_bits_base"]) == 16
    assert res["governance"]["contradiction_pairs"] > 0
    modes = {r["mode"] for r in res["comparison"]}
    assert {"LTM (cartridge)", "STM (residual items only)"} <= modes
    again = run_measurements(fast=True, out=out, progress=False, resume=True)  # every section kept, none re-run
    assert all(again[s] == res[s] for s in (*sections, "evaluation", "comparison"))
    assert again["section_seconds"] == res["section_seconds"]
    assert res["split"] == {"name": "tune", "consolidated": ["f001", "f016"], "residual": ["f017", "f020"]}
    g = res["signal"]["per_item_at_init"]  # G2's bootstrap bound over the consolidated items (guard rows excluded)
    assert g["m"] == 16 and g["snr_m_lo"] is not None and g["snr_m_lo"] <= g["snr_m"]


def test_measure_report_split_consolidates_facts_no_recipe_was_tuned_on(tiny_jobs):
    from stmltm_nb.apps.measure_job import run_measurements

    with pytest.raises(ValueError, match="split"):
        run_measurements(fast=True, split="holdout", progress=False)
    with pytest.raises(ValueError, match="skip: unknown memory modes"):
        run_measurements(fast=True, skip=["crystal ball"], progress=False)
    out = tiny_jobs / "report.json"  # one seed and only the cartridge's modes: what differs here is the split
    skip = ["STM (all items)", "STM (own chunk, oracle)", "no memory", "STM + retrieval"]
    # with a recipe override (stmltm measure --set), and --resume on a file that does not exist yet
    res = run_measurements(fast=True, out=out, progress=False, split="report", seeds=[0], skip=skip,
                           recipe={"steps": 7}, resume=True)
    assert res["split"] == {"name": "report", "consolidated": ["f105", "f120"], "residual": ["f121", "f124"]}
    # the override trains the cartridges measured, is recorded, and its cartridges are cached apart
    assert res["recipe"] == {"steps": 7} and len(res["consolidation"]["losses"]) == 7
    assert res["consolidation"]["config"]["steps"] == 7
    import os
    from pathlib import Path

    cached = {p.name for p in Path(os.environ["STMLTM_CACHE"]).iterdir()}
    assert any(n.startswith("measure-cartridge-fast-report-recipe-") for n in cached), cached
    before = out.read_text()
    with pytest.raises(ValueError, match="recipe overrides"):  # a resume under another recipe is refused
        run_measurements(fast=True, out=out, progress=False, split="report", seeds=[0], skip=skip, resume=True)
    with pytest.raises(ValueError, match="final split is read once"):
        run_measurements(fast=True, progress=False, split="final", recipe={"steps": 7})
    with pytest.raises(ValueError, match="seeds"):
        run_measurements(fast=True, progress=False, recipe={"seed": 3})
    assert out.read_text() == before


def test_measure_final_split_is_the_one_reader_of_the_sealed_facts(tiny_jobs):
    """The sealed split's only path, exercised on the tiny random model (no result of the real recipe is read)."""
    from stmltm_nb.apps.measure_job import run_measurements

    res = run_measurements(fast=True, out=tiny_jobs / "final.json", progress=False, split="final", seeds=[0],
                           skip=["STM (all items)", "STM (own chunk, oracle)", "no memory"])
    assert res["split"]["name"] == "final" and res["split"]["consolidated"][0].startswith("x")
    assert {r["mode"] for r in res["comparison"]} >= {"LTM (cartridge)", "LTM + residual STM", "teacher (fact alone)"}
    assert res["recipe"] == {}


def test_demo_runs_the_shared_sections_and_writes_the_report(tiny_jobs):
    from stmltm_nb.apps.demo import DEMO, run_demo

    res = run_demo(out_dir=tiny_jobs / "report", fast=True, progress=False)
    saved = json.loads((tiny_jobs / "report" / "report.json").read_text())
    assert saved["n_facts"] == 8 and saved["consolidation"]["config"]["steps"] == 5
    assert set(res["recall"]) >= {"by_position", "pooled", "fits", "best_fit"} and "heldout" not in res["recall"]
    assert "fit_stateless_quadratic" not in res["cost"]  # two sizes in fast mode: no quadratic fit
    assert [r["n"] for r in res["cost"]["rows"]] == [0, 1, 8]
    assert {r["mode"] for r in saved["comparison"]} == set(DEMO.modes)  # the first run's table: the verdict's rows
    # answered in batches where a memory can: no per-query seconds there; the rule prices retrieval from its curve
    assert {r["mode"] for r in saved["comparison"] if r["s_per_query"] is None} == set(DEMO.modes) - {"STM + retrieval"}
    assert [r["n"] for r in saved["retrieval"]["cost"]["rows"]] == [1, 8]
    assert saved["decision"]["arms"]["retrieval"]["available"]
    assert isinstance(saved["decision"]["consolidate"], bool) and math.isfinite(saved["total_seconds"])
    html = (tiny_jobs / "report" / "report.html").read_text()
    assert "STM vs LTM" in html and "Decision:" in html
    assert "answered in batches" in html  # the page says why those rows have no seconds per query


def test_demo_full_asks_every_memory_mode_and_more_questions_per_stm_size(tiny_jobs):
    """``stmltm demo --full``: every mode of the STM-vs-LTM table (the residual notes alone included) and the
    recall curve's 24 questions per size where the first run asks 12."""
    from stmltm_nb.apps.cli import main
    from stmltm_nb.metrics.comparison import MODES

    assert main(["demo", "--fast", "--full", "--out", str(tiny_jobs / "full")]) == 0
    full = json.loads((tiny_jobs / "full" / "report.json").read_text())
    assert full["full"] is True and {r["mode"] for r in full["comparison"]} == set(MODES)
    assert all(r["s_per_query"] is not None for r in full["comparison"])  # every query timed
    resid = [r for r in full["comparison"] if r["mode"] == "STM (residual items only)" and r["questions"] == "train"]
    assert len(resid) == 1 and resid[0]["recall_cart"] is None and resid[0]["n_questions"] == 4
    assert main(["demo", "--fast", "--out", str(tiny_jobs / "first")]) == 0
    first = json.loads((tiny_jobs / "first" / "report.json").read_text())

    def asked(res, n):
        return sum(r["total"] for r in res["recall"]["by_position"] if r["n"] == n)

    assert first["full"] is False and asked(full, 1) == 2 * asked(first, 1) == 24  # n = 1: one fact per buffer


def test_measure_cartridges_only_trains_and_asks_the_cartridges_and_stops(tiny_jobs, capsys):
    """``stmltm measure --cartridges-only``: a lever's run holds the cartridges' sections (consolidation, their
    questions, retention) and none of the recipe-free curves, says so, and prints the cartridge rows."""
    import json

    from stmltm_nb.apps.cli import main

    out = tiny_jobs / "lever.json"
    assert main(["measure", "--fast", "--seeds", "0", "--set", "steps=5", "--cartridges-only", "--ask-batch", "4",
                 "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["cartridges_only"] is True and res["recipe"] == {"steps": 5}
    assert {r.get("batch") for r in res["evaluation"]["seed0"]} == {4}  # answered 4 at a time
    assert len(res["consolidation"]["losses"]) == 5 and set(res["evaluation"]) == {"seed0"}
    assert not {"signal", "cartridge", "compression", "recall", "cost", "retrieval", "governance"} & set(res)
    modes = {r["mode"] for r in res["comparison"]}
    assert modes and all(m.startswith("LTM") for m in modes), modes
    assert {r["mode"] for r in res["retention"]["rows"]} >= {"no memory", "LTM (cartridge)", "LTM + residual STM"}
    printed = capsys.readouterr().out
    assert "(cartridges only); held-out recall of the cartridge's facts: LTM" in printed, printed
    # refused before anything loads: --skip (nothing without a cartridge is asked), the shipped curves as --out
    from stmltm_nb.apps.measure_job import run_measurements
    from stmltm_nb.decision.curves import curves_path

    assert main(["measure", "--fast", "--cartridges-only", "--skip", "no memory", "--out", str(out)]) == 2
    assert main(["measure", "--fast", "--cartridges-only", "--out", str(curves_path())]) == 2
    with pytest.raises(ValueError, match="cartridges-only run asks no memory mode"):
        run_measurements(fast=True, progress=False, cartridges_only=True, skip=["no memory"])
    # batched asking only in a lever's run: a full run's seconds per query are latencies the rule reads
    assert main(["measure", "--fast", "--ask-batch", "4", "--out", str(out)]) == 2
    assert main(["measure", "--fast", "--cartridges-only", "--ask-batch", "0", "--out", str(out)]) == 2
    with pytest.raises(ValueError, match="ask_batch must be 1"):
        run_measurements(fast=True, progress=False, ask_batch=4)
    # a full run resumed from the lever's file completes it without training again
    trained = res["section_seconds"]["consolidation"]
    skip = ["STM (all items)", "STM (own chunk, oracle)", "no memory", "STM + retrieval"]
    full = run_measurements(fast=True, out=out, progress=False, seeds=[0], skip=skip, recipe={"steps": 5},
                            resume=True)
    assert "cartridges_only" not in full and {"signal", "compression", "recall", "cost", "governance"} <= set(full)
    assert full["section_seconds"]["consolidation"] == trained
    assert json.loads(out.read_text())["retention"] == res["retention"]
    # the lever's batched answers are asked again one by one: a full run's seconds per query are latencies
    assert full["evaluation"]["seed0"] and all("batch" not in r for r in full["evaluation"]["seed0"])
