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
