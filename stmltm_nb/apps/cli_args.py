"""Argument checks shared by the ``stmltm`` commands: every one runs before a model loads, and a failure is a
:class:`UsageError` (exit status 2) that changes nothing on disk."""

from __future__ import annotations

import math
from pathlib import Path


class UsageError(Exception):
    """A bad command-line argument, found before any model loads (exit status 2)."""


def _shipped_dirs() -> set[Path]:
    """The package's shipped data folders (this checkout's ``data/`` and ``$STMLTM_DATA``)."""
    from stmltm_nb.shipped import CHECKOUT_DATA

    dirs = {CHECKOUT_DATA.resolve()}
    try:
        from stmltm_nb.shipped import data_dir

        dirs.add(data_dir().resolve())
    except FileNotFoundError:
        pass
    return dirs


def output_path(arg: str | None, default_name: str) -> Path:
    """Where a command writes its result: ``--out`` (a file, or a folder to put ``default_name`` in), else
    ``default_name`` in the working folder. A shipped data file is overwritten only when ``--out`` names that
    very file; the parent folder must be writable (checked now, before the model loads)."""
    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir

    explicit = arg is not None and not Path(arg).is_dir()
    path = (Path(arg) if explicit else Path(arg or ".") / default_name).expanduser().resolve()
    if not explicit and path.exists() and any(d in path.parents for d in _shipped_dirs()):
        raise UsageError(f"refusing to overwrite the shipped file {path}; to replace it, name it: --out {path}")
    if path.is_dir():
        raise UsageError(f"--out {path} is a folder")
    try:
        ensure_writable_dir(path.parent)
    except UnwritableDirError as e:
        raise UsageError(f"--out: {e}") from e
    return path


def usage_check(ok: bool, message: str) -> None:
    if not ok:
        raise UsageError(message)


def check_positive(name: str, v: float, allow_zero: bool = False) -> None:
    usage_check(math.isfinite(v) and (v >= 0 if allow_zero else v > 0),
          f"--{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {v}")


def preflight_cache() -> None:
    """The teacher targets and the converted model go to the cache folder: prove it is writable now."""
    from stmltm_nb.models import CacheDirError, ensure_cache_writable

    try:
        ensure_cache_writable()
    except CacheDirError as e:
        raise UsageError(str(e)) from e


def device_arg(name: str) -> str:
    """``--device``: resolved now (``auto`` → CUDA, MPS or CPU); a missing accelerator is a :class:`UsageError`."""
    from stmltm_nb.env import DeviceError, pick_device

    try:
        return pick_device(name)
    except DeviceError as e:
        raise UsageError(str(e)) from e


def questions_arg(k: int) -> int:
    """``--questions`` (training questions per note): within what self-study can always supply."""
    from stmltm_nb.memory.study import MAX_K

    usage_check(1 <= k <= MAX_K, f"--questions must be in [1, {MAX_K}], got {k}")
    return k


def fresh_out_dir(arg: str, create: bool = True) -> Path:
    """``--out`` for a command that writes a new folder: it may not exist, or be an empty folder; its parent must
    be writable (created with ``create``; without it only the nearest existing folder above is checked)."""
    import os

    from stmltm_nb.io import UnwritableDirError, ensure_writable_dir

    out = Path(arg).expanduser().resolve()
    usage_check(not out.exists() or (out.is_dir() and not any(out.iterdir())),
          f"--out {out} exists and is not an empty folder; choose a new folder (nothing was written)")
    if not create:
        top = next(p for p in out.parents if p.exists())
        usage_check(top.is_dir() and os.access(top, os.W_OK), f"--out: {top} is not a writable folder")
        return out
    try:
        ensure_writable_dir(out.parent)
    except UnwritableDirError as e:
        raise UsageError(f"--out: {e}") from e
    return out


def notes_arg(path: str) -> list:
    """Read a notes file now (``.txt`` or ``.jsonl``); a bad file is a :class:`UsageError` naming the line."""
    from stmltm_nb.memory.notes import NotesError, read_notes

    try:
        return read_notes(path)
    except NotesError as e:
        raise UsageError(str(e)) from e


WINDOW_RESERVE = 512  # tokens kept for the STM header, the item's formatting, the question and the answer


def check_notes_fit(notes: list, model_name: str) -> None:
    """Every note must fit the model's window with room for a question and an answer: checked with the tokenizer
    and the config only (no weights load), before any folder is made; a :class:`UsageError` names the line."""
    from stmltm_nb.memory.notes import NotesError, check_note_lengths
    from stmltm_nb.models import ModelNotFoundError, context_window, load_tokenizer

    try:
        window = context_window(model_name)
        check_note_lengths(notes, load_tokenizer(model_name), window - WINDOW_RESERVE)
    except NotesError as e:
        raise UsageError(str(e)) from e
    except (ModelNotFoundError, OSError) as e:
        raise UsageError(f"--model {model_name}: {e}") from e
