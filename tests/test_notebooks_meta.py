"""Structure checks on the notebook sequence (the notebooks themselves run under nbval in `make test`)."""

import json

import pytest

from stmltm_nb.apps.notebooks import drift, sources

SRCS = sources()


def test_every_source_has_an_up_to_date_notebook():
    assert len(SRCS) == 10
    assert drift() == [], "run `stmltm notebooks --only NN` to regenerate"


@pytest.mark.parametrize("src", SRCS, ids=lambda p: p.stem)
def test_notebook_structure(src):
    nb = json.loads(src.with_suffix(".ipynb").read_text())
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith(f"# {src.stem[:2]} · ")
    for needle in ("colab-badge.svg", "mybinder.org/badge_logo.svg", "**Learning goals**", "**Prerequisites:**",
                   "**Runtime:**"):
        assert needle in first, needle
    assert "## Summary" in md and "## Exercises" in md
    assert md.rindex("## Exercises") > md.rindex("## Summary")
    assert "widgets" not in nb.get("metadata", {})
    assert src.with_suffix(".ipynb").stat().st_size < 2_000_000
    text = src.with_suffix(".ipynb").read_text()
    assert "/work/" not in text and "/root/" not in text and "/home/" not in text  # no machine paths


@pytest.mark.parametrize("src", SRCS, ids=lambda p: p.stem)
def test_setup_cell_is_one_call_with_the_committed_printout(src):
    nb = json.loads(src.with_suffix(".ipynb").read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    text = "".join(cell["source"])
    assert "FAST = notebook_setup()" in text and 'if IN_COLAB:' in text  # the Colab install stays inline
    assert [o.get("text") for o in cell["outputs"]] in (["fast mode: False\n"], [["fast mode: False\n"]])


def test_notebook_setup_seeds_plotly_and_reports_fast_mode(monkeypatch, capsys):
    import random

    import numpy as np
    import plotly.io as pio

    from stmltm_nb import notebook_setup

    monkeypatch.setenv("STMLTM_FAST", "1")
    assert notebook_setup(seed=3) is True
    first = (random.random(), float(np.random.rand()))
    monkeypatch.setenv("STMLTM_FAST", "")
    assert notebook_setup(seed=3) is False
    assert (random.random(), float(np.random.rand())) == first
    assert capsys.readouterr().out == "fast mode: True\nfast mode: False\n"
    assert pio.renderers.default == "plotly_mimetype+notebook_connected"


def test_package_import_stays_light():
    """`import stmltm_nb` loads no torch and no plotly; notebook_setup resolves on first use."""
    import subprocess
    import sys

    code = ("import sys, stmltm_nb; bad = [m for m in ('torch', 'transformers', 'plotly') if m in sys.modules]; "
            "assert not bad, bad; assert callable(stmltm_nb.notebook_setup); stmltm_nb.not_there")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "AttributeError" in out.stderr and "not_there" in out.stderr, out.stderr
