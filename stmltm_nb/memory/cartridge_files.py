"""The cartridge folder format: file names, :class:`CartridgeError`, the typed record of ``cartridge.json``
(:class:`CartridgeRecord`), and the checks a folder must pass before its weights are read (``cartridge.json``
fields, tensor names and shapes; the backend's own fields and checks come from its
:class:`~stmltm_nb.memory.backends.Backend`). Torch-free."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from stmltm_nb.io import apply_umask

FORMAT_VERSION = 1

WEIGHTS_FILE = "adapter_model.safetensors"
META_FILE = "cartridge.json"


class CartridgeError(ValueError):
    """Bad cartridge arguments, or a cartridge file that is corrupt or belongs to another model."""


# the keys of cartridge.json the record names; the backend's shape fields are the others it knows
_RECORD_KEYS = ("format_version", "backend", "init", "base_fingerprint", "base_model_type", "stats", "items",
                "manifest", "composed_from", "weights_sha256")


@dataclass(frozen=True)
class CartridgeRecord:
    """What a cartridge records about itself, written as ``cartridge.json`` (the folder format is unchanged).

    Each stage writes its own part through one method, so no layer edits a free dict: :meth:`trained`
    (the training run's config and results), :meth:`absorbing` (the item ids φ holds, and the consolidation's
    timings), :meth:`with_manifest` (the controller's commit record), :meth:`saved` (the weights' checksum).
    ``shape`` holds the backend's size fields (prefix: ``p`` and ``num_frozen`` tokens; LoRA: ``lora_rank``);
    ``stats`` values in seconds end in ``_seconds``; ``extra`` keeps keys of a folder this version does not know,
    so reading and re-saving it loses nothing. The mappings are read-only views of the record's own copies (a
    clone that shares a record cannot change its parent's), and :meth:`to_json` hands out a fresh deep copy.
    """

    backend: str
    base_fingerprint: str
    init: str
    shape: Mapping[str, Any]
    base_model_type: str | None = None
    stats: Mapping[str, Any] = field(default_factory=dict)
    items: tuple[str, ...] = ()
    manifest: Mapping[str, Any] | None = None
    composed_from: tuple[str, ...] = ()
    weights_sha256: str | None = None
    format_version: int = FORMAT_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("shape", "stats", "extra", "manifest"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, MappingProxyType(copy.deepcopy(dict(value))))

    def to_json(self) -> dict[str, Any]:
        """The ``cartridge.json`` object (a fresh deep copy; keys absent when empty, as in every format-1 folder)."""
        out: dict[str, Any] = {"format_version": self.format_version, "backend": self.backend, "init": self.init,
                               "base_fingerprint": self.base_fingerprint}
        if self.base_model_type is not None:
            out["base_model_type"] = self.base_model_type
        out["stats"] = copy.deepcopy(dict(self.stats))
        out.update(copy.deepcopy(dict(self.shape)))
        if self.items:
            out["items"] = list(self.items)
        if self.manifest is not None:
            out["manifest"] = copy.deepcopy(dict(self.manifest))
        if self.composed_from:
            out["composed_from"] = list(self.composed_from)
        if self.weights_sha256 is not None:
            out["weights_sha256"] = self.weights_sha256
        out.update(copy.deepcopy(dict(self.extra)))
        return out

    @classmethod
    def from_json(cls, meta: Mapping[str, Any], shape_fields: Iterable[str]) -> CartridgeRecord:
        """The record of a ``cartridge.json`` object already checked by :func:`read_meta`; ``shape_fields``: the
        backend's size fields (``Backend.meta_fields`` names)."""
        shape_fields = tuple(shape_fields)
        meta = copy.deepcopy(dict(meta))
        return cls(backend=meta["backend"], base_fingerprint=meta["base_fingerprint"], init=meta.get("init", "random"),
                   shape={k: meta[k] for k in shape_fields}, base_model_type=meta.get("base_model_type"),
                   stats=meta.get("stats") or {}, items=tuple(meta.get("items") or ()), manifest=meta.get("manifest"),
                   composed_from=tuple(meta.get("composed_from") or ()), weights_sha256=meta.get("weights_sha256"),
                   format_version=meta.get("format_version", FORMAT_VERSION),
                   extra={k: v for k, v in meta.items() if k not in _RECORD_KEYS and k not in shape_fields})

    def trained(self, stats: Mapping[str, Any]) -> CartridgeRecord:
        """After a training run: ``stats`` (its config fields and results) replace the previous run's."""
        return replace(self, stats=copy.deepcopy(dict(stats)))

    def absorbing(self, items: Iterable[str], **stats: Any) -> CartridgeRecord:
        """φ now holds ``items`` (ids, in order, no repeats); ``stats`` are added to the training stats."""
        return replace(self, items=tuple(dict.fromkeys(items)), stats={**copy.deepcopy(dict(self.stats)), **stats})

    def with_manifest(self, manifest: Mapping[str, Any]) -> CartridgeRecord:
        """The controller's commit record (parent version, absorbed and replayed ids, checks, seconds)."""
        return replace(self, manifest=copy.deepcopy(dict(manifest)))

    def saved(self, weights_sha256: str) -> CartridgeRecord:
        return replace(self, weights_sha256=weights_sha256)



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


def check_shapes(wfile: Path, got: dict[str, Any], want: dict[str, Any], meta: dict[str, Any]) -> None:
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


def make_publishable(folder: Path) -> None:
    """Give every file in ``folder`` the user's umask permissions (readable on a shared JupyterHub)."""
    for f in folder.iterdir():
        apply_umask(f, folder=f.is_dir())
