"""``stmltm measure``: every Key-Metrics signal on one model, saved as one JSON file the notebooks read.

Sections of the JSON (units in the key names or below):
``recall`` (q_ctx(n), L_ctx(n) by position and pooled, with fits), ``cost`` (c_ctx(n) in both regimes, fits),
``consolidation`` (c_upd, FLOPs, loss history, probe prediction), ``cartridge`` (r_cart, KV bytes),
``signal`` (SNR, B_simple both estimators, m*), ``compression`` (DL(Δφ), G_MDL in bytes and bits,
prequential code), ``comparison`` (the STM-vs-LTM table), ``governance`` (contradictions found). A lever's run
(``--cartridges-only``) holds ``consolidation``, ``evaluation``, ``retention`` and ``comparison`` only and says
``"cartridges_only": true``.
The sections are functions of :mod:`stmltm_nb.apps.sections` (``stmltm demo`` runs some at demo size).
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from stmltm_nb.apps.log import json_clean, log
from stmltm_nb.decision.curves_record import SCHEMA_VERSION
from stmltm_nb.io import atomic_write_json
from stmltm_nb.memory.notes import Note
from stmltm_nb.metrics import comparison as _C

MIN_NOTES = 4  # measuring your notes needs some consolidated and some residual ones
EVAL_ORDER = (_C.TEACHER, _C.RESIDUAL_ONLY, _C.RETRIEVAL, _C.STM_ALL, _C.NO_MEMORY, _C.ORACLE)  # the memories
# without a cartridge, in the order asked (the cartridge seeds come first)
SEEDS = (0, 1)  # training seeds of the measured cartridge (headline numbers run on at least two)
SPLITS = {"tune": (0, 104), "report": (104, 208)}  # shipped facts [first, end) of each split: recipes are tuned
# on facts 1-104 and reported on 105-208, which no recipe choice saw (issue #13)


def _digest(what: Any) -> str:
    """12 hex digits of the SHA-256 of ``what`` as JSON (sorted keys): names a cache folder after its inputs."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:12]


def check_run_args(*, split: str = "tune", seeds: Sequence[int] = SEEDS, skip: Sequence[str] = (),
                   recipe: Mapping[str, Any] | None = None, cartridges_only: bool = False, ask_batch: int = 1,
                   n_notes: int | None = None) -> None:
    """The checks of :func:`run_measurements`' arguments, in one place (the CLI calls it before anything loads; a
    failure is its exit 2): a ValueError names what is wrong. ``n_notes``: how many notes are measured (None: the
    shipped facts)."""
    if split not in SPLITS and split != "final":
        raise ValueError(f"split must be one of {sorted([*SPLITS, 'final'])}, got {split!r}")
    if cartridges_only and skip:
        raise ValueError(f"skip {list(skip)}: a cartridges-only run asks no memory mode without a cartridge")
    unknown = set(skip) - set(EVAL_ORDER)
    if unknown:
        raise ValueError(f"skip: unknown memory modes {sorted(unknown)}; these can be skipped: {list(EVAL_ORDER)}")
    if not list(seeds):
        raise ValueError("seeds: at least one training seed")
    if n_notes is not None and n_notes < MIN_NOTES:
        raise ValueError(f"measuring needs at least {MIN_NOTES} notes (some consolidated, some residual), "
                         f"got {n_notes}")
    if "seed" in (recipe or {}):
        raise ValueError("recipe: the training seeds come from seeds (stmltm measure --seeds), not from seed=")
    if recipe and split == "final" and n_notes is None:
        raise ValueError(f"recipe {dict(recipe)}: the final split is read once, with the frozen recipe (no "
                         "overrides; try levers on the tuning split)")
    if ask_batch < 1 or (ask_batch > 1 and not cartridges_only):
        raise ValueError(f"ask_batch must be 1, or more with cartridges_only (a full run's seconds per query are "
                         f"latencies the rule reads), got {ask_batch}")


def run_measurements(model_name: str = "default", fast: bool = False, n_facts: int = 64,
                     out: str | Path | None = None, progress: bool = True, resume: bool = False,
                     notes: Sequence[Note] | None = None, device: str = "cpu", questions: int = 2,
                     split: str = "tune", seeds: Sequence[int] = SEEDS, n_resid: int | None = None,
                     skip: Sequence[str] = (), recipe: Mapping[str, Any] | None = None,
                     cartridges_only: bool = False, ask_batch: int = 1) -> dict[str, Any]:
    """Measure everything and return the JSON-ready dict (written to ``out`` when given).

    ``notes``: measure on your notes instead of the shipped facts (self-study writes ``questions`` training
    questions and one held-out question per note; the last quarter, at most 8, are the residual STM; STM sizes
    are capped at the number of notes; the governance section, which needs the shipped contradictions, is left
    out). ``split``: the shipped facts consolidated and kept residual come from the tuning split (facts 1-104,
    where recipes were chosen), the report split (105-208) or, only when named, the sealed final split
    (``data/final_facts.jsonl``); held-out questions are that split's wordings. The STM recall and cost curves use
    the shipped facts from the start either way (no recipe is involved). ``seeds``: one cartridge is trained per
    training seed; the cartridge rows report their mean and each seed's value (signal and compression use the
    first seed). ``n_resid``: newer facts kept in STM after the cartridge (default 16; 4 fast). ``skip``: memory
    modes of :data:`EVAL_ORDER` not to ask (their rows are absent, listed under ``skipped``). Partial results
    are written after every section; with ``resume=True`` sections already present in ``out`` are kept and
    skipped (trained cartridges are reloaded from the cache folder). ``recipe``: :class:`ConsolidationConfig`
    overrides of the cartridges measured (``stmltm measure --set``; a lever tried on the tuning split), recorded
    under ``recipe``; their cartridges are cached apart from the shipped recipe's, and a resume under other
    overrides is refused. ``cartridges_only``: train and ask the cartridges (their evaluation parts and the
    retention section) and stop: what a recipe lever changes, without the recipe-free curves and the signal and
    compression sections (a lever's run; the file says ``"cartridges_only": true`` and holds no curves for the
    rule; a full run resuming it completes it). ``ask_batch``: questions answered at once by a memory that can
    (the same greedy answers, :meth:`~stmltm_nb.memory.stm.STMBuffer.answer_many`); its records' seconds per query
    are then throughput at that batch, not one query's latency, so only a ``cartridges_only`` run takes more than 1.
    """
    import json

    import torch

    from stmltm_nb.apps import sections as S
    from stmltm_nb.env import machine
    from stmltm_nb.memory.cartridge import Cartridge
    from stmltm_nb.memory.config import ConsolidationConfig
    from stmltm_nb.memory.consolidation import (
        Lesson,
        RunOptions,
        consolidate,
        templates_of,
        untrained_cartridge,
    )
    from stmltm_nb.memory.facts import load_facts
    from stmltm_nb.metrics.measure import cartridge_overhead
    from stmltm_nb.metrics.probe import probe_prediction
    from stmltm_nb.models import cache_dir, load_model

    seeds = list(dict.fromkeys(int(s) for s in seeds))
    check_run_args(split=split, seeds=seeds, skip=skip, recipe=recipe, cartridges_only=cartridges_only,
                   ask_batch=ask_batch, n_notes=None if notes is None else len(notes))
    recipe = dict(recipe or {})
    cfg0 = replace(ConsolidationConfig(steps=30 if fast else ConsolidationConfig.steps,
                                       batch_size=8 if fast else ConsolidationConfig.batch_size), **recipe)
    res: dict[str, Any] = {}
    if resume and out is not None and Path(out).exists():
        res = json.loads(Path(out).read_text())
        kept = res.get("split", {}).get("name")
        if notes is None and kept is not None and kept != split and "consolidation" in res:
            raise ValueError(f"{out} holds sections measured on the {kept} split; resume it with --split {kept} "
                             f"or delete its cartridge sections")
        if res.get("recipe", {}) != recipe:
            raise ValueError(f"{out} was measured with the recipe overrides {res.get('recipe', {})}, not {recipe}; "
                             f"resume with the same --set or write another --out")
        log(f"resuming with sections {sorted(k for k, v in res.items() if isinstance(v, dict))}")
    facts = load_facts()
    pool = load_facts(split="final") if split == "final" and notes is None else facts
    torch.manual_seed(0)
    lm = load_model(model_name, device=device)
    n_facts = min(n_facts, 16) if fast else n_facts
    n_resid = (4 if fast else 16) if n_resid is None else int(n_resid)
    if notes is not None:
        from stmltm_nb.memory.study import study_notes

        pool = facts = study_notes(lm, notes, k=questions, cache=Path(cache_dir()) / "study-cache.json",
                                   progress=progress)
        n_resid = min(n_resid, 8, max(1, len(facts) // 4))
        n_facts = min(n_facts, len(facts) - n_resid)
    first, end = (0, len(pool)) if notes is not None or split == "final" else SPLITS[split]
    if notes is None and first + n_facts + n_resid > end:
        raise ValueError(f"{n_facts} consolidated + {n_resid} residual facts do not fit the {split} split "
                         f"(facts {first + 1}-{end}): lower --facts")
    train_facts, residual = pool[first : first + n_facts], pool[first + n_facts : first + n_facts + n_resid]
    q_split = None if notes is not None else split
    items = [f.to_item() for f in train_facts]
    res.setdefault("carried_note", "")  # sections kept from an earlier run say so here (rendered in the README)
    res.update({"schema_version": SCHEMA_VERSION, "model": lm.name, "fast": fast, "n_facts": n_facts,
                "n_resid": len(residual), "seeds": seeds, "created": _dt.date.today().isoformat(),
                "machine": machine()})
    if notes is None:
        res["split"] = {"name": split, "consolidated": [train_facts[0].id, train_facts[-1].id],
                        "residual": [residual[0].id, residual[-1].id] if residual else []}
    res["recipe"] = recipe
    cart_dir = Path(cache_dir()) / ("measure-cartridge-fast" if fast else "measure-cartridge")
    cart_dir = cart_dir.with_name(cart_dir.name + (f"-{split}" if split != "tune" and notes is None else ""))
    def tagged(tag: str, what: Any) -> Path:  # cartridges of other inputs never stand in for these on a resume
        return cart_dir.with_name(f"{cart_dir.name}-{tag}-{_digest(what)}")

    if notes is not None:
        cart_dir = tagged("notes", [[f.id, f.text] for f in train_facts])
        res["source"] = {"notes": len(facts), "consolidated": len(train_facts), "residual": len(residual)}
    if recipe:  # a lever's cartridges never stand in for the shipped recipe's (nor the other way)
        cart_dir = tagged("recipe", recipe)

    def section(name: str, fn) -> None:
        if name in res:
            return
        log(name)
        t0 = time.perf_counter()
        res[name] = fn()
        res.setdefault("section_seconds", {})[name] = time.perf_counter() - t0
        if out is not None:
            atomic_write_json(out, json_clean(res))

    sizes = [n for n in ([1, 4, 16] if fast else [1, 2, 4, 8, 16, 32, 64, 128]) if n <= len(facts)]
    cost_sizes = [n for n in ([1, 4, 16] if fast else [1, 4, 16, 64, 128, 200]) if n <= len(facts)]
    per_position = 2 if fast else 8
    carts: dict[int, Any] = {}
    state: dict[str, Any] = {}

    def seed_dir(seed: int) -> Path:
        return cart_dir if seed == 0 else cart_dir.with_name(f"{cart_dir.name}-seed{seed}")

    for seed in seeds:
        key = "consolidation" if seed == seeds[0] else f"consolidation_seed{seed}"  # the first seed's is the
        # section every other reader uses (c_upd, losses, probe)
        cfg = replace(cfg0, seed=seed)

        def run_consolidation(cfg=cfg, seed=seed):
            summary, run = S.consolidation_section(lm, train_facts, cfg, progress, save_to=seed_dir(seed))
            state.setdefault("runs", {})[seed] = run
            return {**summary, "probe": probe_prediction(summary["losses"], probe_steps=max(6, cfg.steps // 4))}

        section(key, run_consolidation)
        kept_seed = res[key].get("config", {}).get("seed", seed)
        if kept_seed != seed:
            raise ValueError(f"{out}: section {key} holds a cartridge of seed {kept_seed}, not {seed}; resume with "
                             f"the seeds in their first order or delete the section")
        run = state.get("runs", {}).get(seed)
        carts[seed] = run.cartridge if run is not None else Cartridge.from_pretrained(seed_dir(seed), lm)
    ev = res.setdefault("evaluation", {})
    if not cartridges_only:  # a full run's seconds per query are latencies: parts a lever's run asked in batches
        for part in [p for p, recs in ev.items() if any(r.get("batch") for r in recs)]:  # are asked again
            del ev[part]
            res.get("section_seconds", {}).pop(f"evaluation.{part}", None)

    def ask_part(part: str, seed: int | None, mode: str | None) -> None:
        if part in ev or part in skip:
            return
        log(f"questions: {f'cartridge seed {seed}' if seed is not None else mode}")
        t0 = time.perf_counter()
        ev[part] = S.records_section(lm, train_facts, residual, None if seed is None
                                     else {seed: carts[seed]}, q_split, cfg0.chunk_size, progress,
                                     modes=None if seed is not None else [mode], batch_size=ask_batch)
        res.setdefault("section_seconds", {})[f"evaluation.{part}"] = time.perf_counter() - t0
        res["comparison"] = S.comparison_from(ev, split=q_split)
        if out is not None:
            atomic_write_json(out, json_clean(res))

    # Per-question records, one resumable part each, the most telling first: each cartridge seed (LTM and LTM +
    # residual STM) and the cartridges' retention (all a lever's run measures), then what the rule's priors need.
    for s in seeds:
        ask_part(f"seed{s}", s, None)
    init = untrained_cartridge(lm, items, cfg0)  # the cartridge the recipe starts from (backend, init, p, seed)
    section("retention", lambda: S.retention_section(lm, init, carts, residual))
    res["comparison"] = S.comparison_from(ev, split=q_split)
    if cartridges_only:  # a lever's run: what the recipe changes, nothing the rule's curves need
        res["cartridges_only"] = "recall" not in res  # a resumed complete file stays complete
    else:
        res.pop("cartridges_only", None)  # a full run resumed from a lever's run completes it
        run = state.get("runs", {}).get(seeds[0])
        if run is None:  # resumed: the teacher targets come from the cache, no training
            run = consolidate(lm, Lesson(items, templates_of(train_facts, cfg0)), replace(cfg0, steps=0),
                              RunOptions(progress=False))
        cart, tt, init_vec = carts[seeds[0]], run.targets, run.init_vector
        section("signal", lambda: S.signal_section(init, cart, tt, n_facts, b_big=8 if fast else 16,
                                                   repeats=2 if fast else 4))
        section("cartridge", lambda: cartridge_overhead(cart, repeats=2 if fast else 5))
        section("compression", lambda: S.compression_section(lm, train_facts, cart, init_vec, cfg0, progress))
        section("recall", lambda: S.recall_section(lm, facts, sizes, per_position,
                                                   heldout_sizes=sizes if fast else sizes[::2],
                                                   min_questions=6 if fast else 24))
        section("cost", lambda: S.cost_section(lm, facts, cost_sizes, repeats=2 if fast else 3))
        section("retrieval", lambda: S.retrieval_section(lm, facts, cost_sizes, repeats=2 if fast else 3))
        for mode in EVAL_ORDER:
            ask_part(mode, None, mode)
        res["comparison"] = S.comparison_from(ev, split=q_split)
        res["skipped"] = [p for p in skip if p not in ev]
        if notes is None:
            section("governance", lambda: S.governance_section(lm, facts, n_unrelated=8 if fast else 24))
        res["recall"].update(S.recall_fits(res["recall"]["pooled"]))  # refit (cheap): fixes reach resumed runs
        cons = res["consolidation"]
        cons["probe"] = probe_prediction(cons["losses"], probe_steps=max(6, cfg0.steps // 4))
        res["signal"].update({"m_star_occam": res["compression"]["m_star_occam"],
                              "m_star_agnostic": res["compression"]["m_star_agnostic"]})
    res["total_seconds"] = sum(res.get("section_seconds", {}).values())
    res = json_clean(res)
    if out is not None:
        atomic_write_json(out, res)
        log(f"wrote {out}")
    return res
