"""Rebuild the shipped teacher targets, ``data/teacher_targets/``: the default model's targets for the rows every
consolidation mixes in (prose retention rows and practice facts, :func:`stmltm_nb.memory.consolidation.guard_targets`
with the default :class:`~stmltm_nb.memory.config.ConsolidationConfig`) and for the first ``stmltm demo``'s facts
(:data:`stmltm_nb.apps.demo.DEMO`, its recipe). A fresh machine reads them instead of paying the teacher for them;
their names are hashes of the model's fingerprint and of the inputs, so another model, other facts or edited guard
data compute their own. A consolidation still charges their recorded teacher seconds to c_upd.

Run from the checkout's root after changing the retention text, the practice facts, the demo's facts or size, ``k``
or the default model: ``python -m tools.shipped_targets`` (a few minutes on 2 cores). ``tests/test_guard_rows.py``
checks that the shipped files are the ones the default model needs and that they match a fresh teacher pass.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

from tools.prose import ROOT

OUT = ROOT / "data" / "teacher_targets"


def build(out: Path = OUT) -> dict:
    """Compute the default model's guard targets and the first demo's facts' targets into ``out`` (emptied first)
    with a manifest of SHA-256 sums."""
    from stmltm_nb.apps.demo import DEMO, demo_recipe
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import guard_targets, teacher_targets_for, templates_of
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.memory.teacher import SHIPPED_MANIFEST
    from stmltm_nb.models import load_model, model_fingerprint

    if out.exists():
        shutil.rmtree(out)  # the old files must not answer for the new ones
    lm = load_model("default")
    with tempfile.TemporaryDirectory() as tmp:
        parts, _ = guard_targets(lm, ConsolidationConfig(), targets_cache=tmp, progress=True)
        facts, cfg = load_facts()[: DEMO.facts], demo_recipe(DEMO.steps)
        parts.append(teacher_targets_for(lm, [f.to_item() for f in facts], templates_of(facts, cfg), cfg,
                                         targets_cache=tmp, progress=True))
        if any(p.cache_hits for p in parts):  # the old folder is gone, the cache is empty: nothing may be read
            raise RuntimeError("a part was read, not computed: remove data/teacher_targets and retry")
        out.mkdir(parents=True)
        files = {}
        for f in sorted(Path(tmp).glob("*.safetensors")):
            shutil.copyfile(f, out / f.name)
            files[f.name] = hashlib.sha256(f.read_bytes()).hexdigest()
    manifest = {"model": model_fingerprint(lm), "files": files,
                "note": "written by python -m tools.shipped_targets; names hash the model and the inputs"}
    (out / SHIPPED_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main() -> None:
    m = build()
    size = sum((OUT / n).stat().st_size for n in m["files"])
    print(f"wrote {len(m['files'])} files ({size / 1e6:.2f} MB) to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
