"""The typed record of the measured curves (schema 2): one reader, every bad field named, old schemas refused with
the rebuild command. Torch-free (hand-made curves)."""

import json
import math
import re

import pytest
from curves_v2 import v2_curves

from stmltm_nb.decision.curves_record import (
    REBUILD,
    SCHEMA_VERSION,
    CurvesError,
    MeasuredCurves,
    read_curves,
)


def test_a_schema_2_file_reads_into_the_record(tmp_path):
    c = v2_curves()
    rec = read_curves(c)
    assert isinstance(rec, MeasuredCurves) and rec.schema_version == SCHEMA_VERSION == 2 and rec.seeds == (0, 1)
    assert len(rec.comparison) == 16 and rec.served.recall_cart == 0.8 and rec.served.cart.lo == 0.7
    assert rec.row("LTM (cartridge)").seeds == pytest.approx((0.53, 0.57)) and rec.row("no memory").seeds is None
    assert rec.retention.passages == 12 and rec.retention.row("LTM (step 0)").delta_nll == 0.02
    assert (rec.retrieval.k, rec.retrieval.library, rec.retrieval.b) == (4, "bm25s", 8.5e-06)
    assert rec.cost.cached.b == 0.000488 and rec.consolidation.c_upd_s == 1538.1 and rec.r_cart_s == 0.0
    assert rec.snr_m == 1.43 and rec.recall.best == "exponential"
    p = tmp_path / "c.json"
    p.write_text(json.dumps(c))
    assert read_curves(p).served == rec.served and read_curves(rec) is rec


@pytest.mark.parametrize("version, found", [(None, "missing"), (1, "1"), ("2", "'2'")])
def test_an_older_schema_names_the_version_and_the_rebuild_command(version, found):
    c = v2_curves()
    if version is None:
        del c["schema_version"]
    else:
        c["schema_version"] = version
    with pytest.raises(CurvesError, match=f"schema_version {found}") as e:
        read_curves(c)
    assert REBUILD in str(e.value) and "stmltm measure --split report --seeds 0 1 --out data/measured_curves.json" in str(e.value)


def test_a_newer_schema_is_refused():
    c = v2_curves()
    c["schema_version"] = 3
    with pytest.raises(CurvesError, match="newer"):
        read_curves(c)


def _set(c, path, value):
    node = c
    *parents, leaf = path
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value


SERVED_ROW = 13  # comparison index of (LTM + residual STM, heldout) in curves_v2


@pytest.mark.parametrize("path, value, field", [
    (("comparison", SERVED_ROW, "recall_cart"), 1.5, r"comparison\[LTM \+ residual STM, heldout\]\.recall_cart"),
    (("comparison", SERVED_ROW, "recall_cart"), math.nan, r"LTM \+ residual STM, heldout\]\.recall_cart"),
    (("comparison", SERVED_ROW, "recall_cart_lo"), 0.95, r"recall_cart_lo' = 0.95 exceeds"),
    (("comparison", SERVED_ROW, "lo"), KeyError, r"missing field 'comparison\[LTM \+ residual STM, heldout\]\.lo'"),
    (("comparison", SERVED_ROW, "n_questions"), 2.5, r"heldout\]\.n_questions"),
    (("comparison", SERVED_ROW, "seeds"), [0.5, 2.0], r"heldout\]\.seeds\[1\]"),
    (("comparison", SERVED_ROW, "split"), "test", r"heldout\]\.split"),
    (("comparison", 0, "mode"), "LTM", r"comparison\[0\]\.mode"),
    (("comparison", 0, "questions"), "paraphrase", r"comparison\[0\]\.questions"),
    (("retention", "rows", 3, "delta_nll"), math.inf, r"retention\.rows\[LTM \+ residual STM\]\.delta_nll"),
    (("retention", "passages"), 0, r"retention\.passages"),
    (("retrieval", "cost", "fit_linear", "coef", "b"), "fast", r"retrieval\.cost\.fit_linear\.coef\.b"),
    (("retrieval", "cost", "rows", 0, "excess_s"), None, r"retrieval\.cost\.rows\[0\]\.excess_s"),
    (("consolidation", "c_upd_s"), math.nan, r"consolidation\.c_upd_s"),
    (("cost", "fit_cached_linear", "coef", "b"), math.nan, r"cost\.fit_cached_linear\.coef\.b"),
    (("signal", "per_item_at_init", "snr_m"), -1.0, r"signal\.per_item_at_init\.snr_m"),
    (("cartridge", "r_cart_s"), True, r"cartridge\.r_cart_s"),
    (("recall", "best_fit"), "cubic", r"recall\.best_fit"),
    (("seeds",), [0, -1], r"seeds\[1\]"),
])
def test_every_bad_field_is_named(path, value, field):
    c = v2_curves()
    _set(c, path, value)
    with pytest.raises(CurvesError, match=field):
        read_curves(c, source="x.json")


def test_a_duplicate_row_is_refused():
    c = v2_curves()
    c["comparison"].append(dict(c["comparison"][SERVED_ROW]))
    with pytest.raises(CurvesError, match="more than one row"):
        read_curves(c)


def test_a_partial_file_reads_with_its_sections_missing():
    c = v2_curves()
    rec = read_curves({"schema_version": 2, "recall": c["recall"]})
    assert rec.recall.best == "exponential" and rec.comparison == () and rec.served is None
    assert (rec.retention, rec.retrieval, rec.consolidation, rec.cost, rec.r_cart_s) == (None,) * 5
    resid_null = v2_curves()  # residual figures may be absent or null where not asked
    del resid_null["comparison"][0]["recall_resid"]
    assert read_curves(resid_null).comparison[0].recall_resid is None


def test_the_shipped_file_reads_or_names_its_old_version():
    """Until `stmltm measure` rewrites data/measured_curves.json in schema 2, the reader refuses the shipped file
    with its version and the rebuild command; afterwards it reads and has the served row."""
    from stmltm_nb.decision.curves import curves_path

    raw = json.loads(curves_path().read_text())
    if raw.get("schema_version", 1) < SCHEMA_VERSION:
        with pytest.raises(CurvesError, match=r"schema_version .*" + re.escape(REBUILD)):
            read_curves()
    else:
        rec = read_curves()
        assert rec.served is not None and rec.retention is not None and rec.retrieval is not None


def test_the_shipped_curves_follow_the_protocol():
    """data/measured_curves.json as shipped: two training seeds or more, every memory mode asked (or listed under
    ``skipped``), retention over ≥ 10 passages and ≥ 2,000 tokens, and a recall curve of distinct questions (≥ 24 per
    size) measured by this protocol, not carried from an older run."""
    from collections import defaultdict

    from stmltm_nb.decision.curves_record import MODES
    from stmltm_nb.shipped import data_dir

    d = json.loads((data_dir() / "measured_curves.json").read_text())
    read_curves(data_dir() / "measured_curves.json")  # the one reader accepts it
    assert len(d["seeds"]) >= 2
    asked = {r["mode"] for r in d["comparison"]}
    assert set(MODES) <= asked | set(d.get("skipped", [])) and not asked & set(d.get("skipped", []))
    cart = [r for r in d["comparison"] if r["mode"] == "LTM + residual STM"]
    assert cart and all(len(r["seeds"]) == len(d["seeds"]) for r in cart)
    assert d["retention"]["passages"] >= 10 and d["retention"]["tokens"] >= 2000
    assert "recall" not in d.get("carried", {})
    asked_at = defaultdict(list)
    for r in d["recall"]["by_position"]:
        assert r["facts"], r
        asked_at[r["n"]] += r["facts"]
    assert all(len(v) == len(set(v)) >= 24 for v in asked_at.values()), {n: len(v) for n, v in asked_at.items()}


def test_the_shipped_curves_were_measured_with_the_shipped_recipe():
    """``stmltm measure --set`` records its overrides under ``recipe``: the curves the README, the notebooks and the
    tuner read were measured without any (a lever's file never stands in for them)."""
    from pathlib import Path

    shipped = json.loads((Path(__file__).resolve().parent.parent / "data" / "measured_curves.json").read_text())
    assert shipped.get("recipe", {}) == {} and shipped["split"]["name"] == "report"
