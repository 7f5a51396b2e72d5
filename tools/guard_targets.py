"""Rebuild the shipped guard-row teacher targets, ``data/guard_targets/``: the default model's targets for the rows
every consolidation mixes in (prose retention rows and practice facts, :func:`stmltm_nb.memory.consolidation.
guard_targets` with the default :class:`~stmltm_nb.memory.config.ConsolidationConfig`). A fresh machine reads them
instead of paying the teacher for them (the first ``stmltm demo``); their names are hashes of the model's
fingerprint and of the inputs, so another model, or edited guard data, computes its own.

Run from the checkout's root after changing the retention text, the practice facts, ``k`` or the default model:
``python -m tools.guard_targets`` (a few minutes on 2 cores). ``tests/test_guard_rows.py`` checks that the shipped
files are the ones the default model needs and that they match a fresh teacher pass.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tools.prose import ROOT

OUT = ROOT / "data" / "guard_targets"


def build(out: Path = OUT) -> dict:
    """Compute the default model's guard targets into ``out`` (emptied first) with a manifest of SHA-256 sums."""
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import guard_targets
    from stmltm_nb.memory.teacher import SHIPPED_MANIFEST
    from stmltm_nb.models import load_model, model_fingerprint

    if out.exists():
        shutil.rmtree(out)  # the old files must not answer for the new ones
    lm = load_model("default")
    with tempfile.TemporaryDirectory() as tmp:
        parts, _ = guard_targets(lm, ConsolidationConfig(), targets_cache=tmp, progress=True)
        if any(p.cache_hits for p in parts):  # the old folder is gone, the cache is empty: nothing may be read
            raise RuntimeError("a guard part was read, not computed: remove data/guard_targets and retry")
        out.mkdir(parents=True)
        files = {}
        for f in sorted(Path(tmp).glob("*.safetensors")):
            shutil.copyfile(f, out / f.name)
            files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    manifest = {"model": model_fingerprint(lm), "files": files,
                "note": "written by python -m tools.guard_targets; names hash the model and the inputs"}
    (out / SHIPPED_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main() -> None:
    m = build()
    size = sum((OUT / n).stat().st_size for n in m["files"])
    print(f"wrote {len(m['files'])} files ({size / 1e6:.2f} MB) to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
