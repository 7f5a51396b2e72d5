"""The cartridge folder format: file names, :class:`CartridgeError`, and the checks a folder must pass before its
weights are read (``cartridge.json`` fields, tensor names and shapes; the backend's own fields and checks come from
its :class:`~stmltm_nb.memory.backends.Backend`). Torch-free."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from stmltm_nb.io import apply_umask

FORMAT_VERSION = 1

WEIGHTS_FILE = "adapter_model.safetensors"
META_FILE = "cartridge.json"


class CartridgeError(ValueError):
    """Bad cartridge arguments, or a cartridge file that is corrupt or belongs to another model."""


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate ``cartridge.json`` of a saved cartridge folder (:class:`CartridgeError` names the field)."""
    path = Path(path)
    mfile = path / META_FILE
    if not mfile.is_file():
        raise CartridgeError(f"{path} is not a saved cartridge ({META_FILE} missing)")
    try:
        meta = json.loads(mfile.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CartridgeError(f"{mfile} is corrupt: {e}") from e
    # imported here: the backends import CartridgeError from this module
    from stmltm_nb.memory.backends import BACKENDS

    backend = meta.get("backend") if isinstance(meta, dict) else None
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise CartridgeError(f"{mfile} has no valid 'backend'")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CartridgeError(f"{mfile}: unsupported format_version {meta.get('format_version')}")
    impl = BACKENDS[backend]
    fields = [("base_fingerprint", str, None, True), *impl.meta_fields, ("weights_sha256", str, None, False),
              ("stats", dict, None, False)]
    for name, kind, lo, required in fields:
        v = meta.get(name)
        if v is None and not required:
            continue
        if isinstance(v, bool) or not isinstance(v, kind) or (lo is not None and v < lo):
            want = kind.__name__ + (f" >= {lo}" if lo is not None else "")
            raise CartridgeError(f"{mfile}: field {name!r} must be {want}, got {v!r}")
    impl.check_meta(meta, mfile)
    return meta


def _check_shapes(wfile: Path, got: dict[str, Any], want: dict[str, Any], meta: dict[str, Any]) -> None:
    """Raise :class:`CartridgeError` unless the saved tensors have exactly the names and shapes ``meta`` implies."""
    # imported here: the backends import CartridgeError from this module
    from stmltm_nb.memory.backends import BACKENDS

    if set(got) != set(want):
        raise CartridgeError(f"{wfile}: tensors {sorted(set(got) ^ set(want))[:3]} do not match cartridge.json "
                             f"(backend {meta['backend']!r})")
    for k, t in got.items():
        if tuple(t.shape) != tuple(want[k].shape):
            field = BACKENDS[meta["backend"]].shape_field(k)
            raise CartridgeError(f"{wfile}: tensor {k!r} has shape {tuple(t.shape)} but cartridge.json field "
                                 f"{field!r} = {meta.get(field)} implies {tuple(want[k].shape)}")


def _publishable(folder: Path) -> None:
    """Give every file in ``folder`` the user's umask permissions (readable on a shared JupyterHub)."""
    for f in folder.iterdir():
        apply_umask(f, folder=f.is_dir())
