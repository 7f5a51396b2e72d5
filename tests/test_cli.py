import json

import pytest

from stmltm_nb.apps.cli import main


def test_decide_exit_codes_and_terms(capsys, tmp_path):
    assert main(["decide", "--n", "64", "--Q", "5000", "--c-upd", "600", "--kappa1", "0.002", "--lam", "5"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("CONSOLIDATE") and "lhs_QA" in out and "G4 quality" in out
    assert main(["decide", "--Q", "1"]) == 1
    assert "WAIT" in capsys.readouterr().out
    assert main(["decide", "--Q", "nan"]) == 2
    assert "Q is NaN" in capsys.readouterr().err
    assert main(["decide", "--snr", "0.5", "--tau", "2", "--Q", "1e6", "--lam", "5"]) == 1
    assert "G2 SNR" in capsys.readouterr().out
    # G2 tests the bootstrap lower bound when one is given: a point estimate above τ does not pass on its own
    assert main(["decide", "--snr", "1.5", "--snr-lo", "0.5", "--Q", "1e6", "--lam", "5"]) == 1
    assert "G2 SNR" in capsys.readouterr().out
    assert main(["decide", "--snr", "1.5", "--snr-lo", "1.2", "--Q", "1e6", "--lam", "5"]) == 0
    capsys.readouterr()
    assert main(["decide", "--delta", "1.5"]) == 2
    assert "delta" in capsys.readouterr().err
    f = tmp_path / "x.json"
    f.write_text(json.dumps({"n": 64, "Q": 5000, "c_upd": 600, "r_cart": 0.01, "lam": 5,
                             "cost": {"kappa1": 0.002}, "recall": {"kind": "hyperbolic", "q0": 1.0, "n50": 10}}))
    assert main(["decide", "--json", str(f), "--as-json"]) == 0
    assert '"consolidate": true' in capsys.readouterr().out
    f.write_text("{broken")
    assert main(["decide", "--json", str(f)]) == 2


@pytest.mark.parametrize("cmd", ["demo", "measure", "decide", "stream"])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0 and "usage" in capsys.readouterr().out


def test_the_notebook_build_is_not_a_package_command(capsys):
    """The build is development tooling of the checkout (`make notebooks`, `python -m tools.notebooks`)."""
    with pytest.raises(SystemExit) as e:
        main(["notebooks", "--help"])
    assert e.value.code == 2 and "invalid choice: 'notebooks'" in capsys.readouterr().err


def test_stream_command_loses_no_item_and_writes_the_log(tiny, tmp_path, monkeypatch, capsys):
    """`stmltm stream` end to end on the tiny model: priors from the measured curves, every item accounted for,
    the event log copied, a summary event last."""
    import stmltm_nb.models as models

    monkeypatch.setattr(models, "load_model", lambda name="default", **kw: tiny)
    out = tmp_path / "events.jsonl"
    code = main(["stream", "--items", "12", "--check-every", "4", "--p", "8", "--steps", "2",
                 "--root", str(tmp_path / "ctl"), "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and "priors from" in text
    log = [json.loads(line) for line in out.read_text().splitlines()]
    summary = log[-1]
    assert summary["event"] == "summary" and summary["lost"] == 0
    assert summary["items"] == 12 + summary["superseded"] >= 12
    assert sum(e["event"] == "decision" for e in log) == summary["items"] // 4


def test_contradictions_arrive_after_the_fact_they_replace():
    from stmltm_nb.apps.cli_stream import contradiction_stream
    from stmltm_nb.memory.facts import load_facts

    allf = load_facts(contradictions=True)
    base = [f for f in allf if not f.supersedes][:104]
    contra = [f for f in allf if f.supersedes and any(b.id == f.supersedes for b in base)]
    stream = contradiction_stream(base, contra)
    order = {f.id: i for i, f in enumerate(stream)}
    assert len(stream) == len(base) + len(contra) and [f for f in stream if not f.supersedes] == base
    assert all(order[c.id] > order[c.supersedes] and order[c.id] >= len(base) // 2 for c in contra)
    assert any(order[c.supersedes] > len(base) // 2 for c in contra)  # the case that came first before the fix


def test_recipe_overrides_are_parsed_and_checked_before_any_model():
    from stmltm_nb.memory.config import ConsolidationConfig, parse_overrides

    got = parse_overrides(["standins=pool", "residual_min=0", "lr=1", "steps=200", "init=text"])
    assert got == {"standins": "pool", "residual_min": 0, "lr": 1.0, "steps": 200, "init": "text"}
    assert type(got["lr"]) is float and ConsolidationConfig(**got).steps == 200
    for bad, message in [(["steps"], "KEY=VALUE"), (["=3"], "KEY=VALUE"), (["stepz=3"], "not a ConsolidationConfig"),
                         (["steps=many"], "expected int"), (["steps=2.5"], "expected int"),
                         (["steps=1", "steps=2"], "steps is set twice"),
                         (["standins=elsewhere"], "standins must be one of"), (["lr=true"], "expected float")]:
        with pytest.raises(ValueError, match=message):
            parse_overrides(bad)


@pytest.mark.parametrize("args,message", [
    (["--set", "steps=many"], "--set: steps=many"),
    (["--set", "seed=3"], "the training seeds come from seeds (stmltm measure --seeds)"),
    (["--set", "standins=elsewhere"], "standins must be one of"),
    (["--set", "steps=7", "--split", "final"], "the final split is read once"),
    (["--set", "steps=7", "--set", "steps=8"], "steps is set twice"),  # repeated --set options add up
    (["--resume"], "was measured with the recipe overrides {'steps': 7}, not {}"),
    (["--resume", "--set", "steps=8"], "not {'steps': 8}")])
def test_measure_refuses_a_bad_recipe_override_before_the_model_loads(args, message, capsys, monkeypatch, tmp_path):
    import stmltm_nb.models as models

    def no_model(*a, **kw):
        raise AssertionError("the model loaded before the recipe was checked")

    monkeypatch.setattr(models, "load_model", no_model)
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "m.json"
    kept = json.dumps({"recipe": {"steps": 7}, "recall": {}})
    if "--resume" in args:
        out.write_text(kept)
    assert main(["measure", "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert (out.read_text() == kept) if "--resume" in args else not out.exists()
