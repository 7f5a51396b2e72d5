"""The one training recipe: :class:`ConsolidationConfig` holds every default of a consolidation (teacher,
student, residual rows). :func:`~stmltm_nb.memory.training.train_cartridge` and
:func:`~stmltm_nb.memory.consolidation.consolidate` have no defaults of their own; every caller passes a config.

The config validates itself on construction, so a bad value fails before any teacher pass or training step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from stmltm_nb.memory.backends import BACKENDS, DEFAULT_BACKEND, backend_names

STANDINS = ("items", "pool")  # where stand-in residual items come from (ConsolidationConfig.standins)
INITS = ("stm", "text", "random")
DTYPES = ("float32", "bfloat16")  # the student's compute dtype (autocast; weights and teacher targets stay float32)
RETENTION_CORPORA = ("prompts", "prose", "both")  # the model's own answers to generic prompts, everyday prose
RETENTION_CONTEXTS = ("none", "standins")  # what a retention row's student sees after the cartridge

COMPUTE_ONLY = ("micro_batches",)  # fields that change how a step is computed, not what it computes
FRACTIONS = ("gold_weight", "residual_prob", "residual_own_prob", "hard_frac", "retention_frac", "practice_frac",
             "update_new_share")


@dataclass(frozen=True)
class ConsolidationConfig:
    """Defaults measured on SmolLM2-135M with 64 shipped facts (notebook 03 and ``stmltm measure``).

    Units: ``p`` cartridge tokens; ``lr`` per Adam step; ``steps`` optimiser steps of ``batch_size`` examples;
    fractions in [0, 1].
    """

    p: int = 128  # cartridge tokens (prefix backend)
    backend: str = DEFAULT_BACKEND  # a key of memory.backends.BACKENDS: "prefix" or "lora"; the backend reads its own
    # fields (prefix: p; LoRA: lora_rank) and checks them (Backend.check_config)
    init: str = "stm"  # "stm" (the items' own KV), "text" (a general text's KV) or "random"
    chunk_size: int = 1  # STM items the teacher sees per chunk (q_ctx(1) = 1.00, q_ctx(2) = 0.50)
    k: int = 20  # teacher top-k
    n_self: int = 0  # self-written questions per item (on top of the shipped templates)
    # Diverse self-study: per fact, this many more hand-written training wordings of its relation
    # (data/study_wordings.json, disjoint from every held-out set) and "Tell me about …" questions answered by the
    # fact's own sentence (memory.study_data.training_wordings). 0 / 0 is the shipped recipe; 7 / 1 was measured on
    # the tuning split, seed 0 (benchmarks/results/lever_tune_study.json, notebook 10.3): the cartridge alone
    # answered more held-out wordings, nothing measured got worse (kept for the recipe to be frozen)
    study_wordings: int = 0
    about_rows: int = 0
    steps: int = 400
    batch_size: int = 8  # below the measured noise scale (two-batch B_simple, notebook 04)
    lr: float = 2e-2
    warmup: int = 5  # linear warm-up steps before the cosine decay (to 10 % of lr)
    gold_weight: float = 1.0
    gold_boost: float = 4.0
    seed: int = 0
    micro_batches: int = 2  # at most this many length-grouped forward passes per step: the same gradient with less
    # padding (README benchmark table, shipped recipe, 64 facts: padded positions 27 % → 9 % with 2 passes, 4 % with 3;
    # the steps/s gain is smaller, since smaller matmuls give back part of the saving; 2 and 3 passes traded places
    # between this session's four benchmark runs on a 2-core machine whose speed drifts, 2 was faster than 1 in each)
    dtype: str = "float32"  # the student's forward/backward under autocast in this dtype (DTYPES); bfloat16: faster
    # steps (README benchmark table), but its recall is not measured, so it is not the default
    lora_rank: int = 8  # adapter rank (LoRA backend)
    residual_prob: float = 0.5  # share of batches with stand-in residual items before the question (raised from
    # 0.25 together with the switch to prose retention rows; the pair lifted the cartridge facts' recall with
    # residual STM from 0.45 to 0.53 on the tuning split, data/ltm_recipe.jsonl; not measured apart)
    residual_max: int = 4  # at most this many such items. Tried: 0.75 / 8 (as many as the served memory's 8 residual
    # facts; rows prefix_prose25_p25_res75_max8*): a trade on the tuning split already (cartridge facts next to residual
    # STM 0.53 -> 0.84, held-out 0.45 -> 0.55, but trained 0.95 -> 0.88 and ΔNLL up), and on the report split the
    # cartridge alone lost held-out recall (0.61 -> 0.36) while the served memory gained; not adopted (README, notebook 10)
    residual_min: int = 1  # at least this many stand-ins in a batch that has them (0: some such batches have none)
    standins: str = "items"  # where stand-in residual items come from: "items" (the items being consolidated, the
    # measured recipe) or "pool" (data/distractor_facts.jsonl: facts of other relations never in a cartridge, as a
    # served memory's newer notes are). Measured with 0-8 of them in 90 % of the batches (tuning split, seed 0,
    # benchmarks/results/lever_tune_pool.json, notebook 10.3): the served memory's recall of the cartridge facts
    # rose, its general-text NLL rose too (a trade by the rule stated before the run; not adopted as it is)
    residual_own_prob: float = 0.0  # share of those rows whose asked item is among them (0.5 measured: worse, README)
    hard_frac: float = 0.0  # share of each batch drawn by loss-proportional sampling (hard-example mining)
    # Rows that protect what the cartridge should not change (issue #13; shares of each batch's rows):
    # Measured on the tuning split (facts 1-104, data/ltm_recipe.jsonl): with prose retention rows the general-text
    # NLL of LTM rises +0.08 nats/token over no memory (+0.29 with the model's own answers to prompts, +0.25
    # without retention rows); the residual facts keep their STM recall (0.75 = 0.75; 0.00 without practice rows).
    retention_frac: float = 0.25  # generic text, student (with cartridge) matched to the base model without it
    retention_corpus: str = "prose"  # what retention rows are made of (RETENTION_CORPORA)
    retention_context: str = "none"  # "none": the retention row's student sees the cartridge alone (the measured
    # recipe); "standins": also the batch's stand-in notes, as a served memory holds newer notes (its teacher stays
    # the base model with no memory, so the student learns to keep general text with notes after it). Measured with
    # standins=pool (tuning split, seed 0, benchmarks/results/lever_tune_pool_ret.json, notebook 10.3): the served
    # memory's general-text NLL came back to the baseline's, the cartridge alone lost held-out recall against pool)
    practice_frac: float = 0.25  # a practice fact in residual STM among distractors: the student must read it
    # Incremental updates (issue #14): warm-start from the committed cartridge, train on the new items plus a
    # sample of the absorbed ones (:func:`~stmltm_nb.memory.consolidation.update`).
    update_steps: int = 120  # optimiser steps of a warm-started update
    update_lr: float = 1e-2  # its peak lr (measured on the tuning split: at 2e-2 with 32 of 64 replayed the old
    # facts lost 0.36 recall; at 5e-3 with all 64 replayed they kept 0.91 but the 16 new reached only 0.12)
    update_new_share: float = 0.5  # share of an update's fact rows about the new items (their examples repeat)
    replay_size: int = 256  # absorbed items replayed in an update (a seeded sample; all when fewer). Cheap:
    # replayed items' teacher targets are cached, and the step count, not the pool, sets the training time

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            want = {"int": int, "float": (int, float), "str": str}[f.type]
            if isinstance(v, bool) or not isinstance(v, want):
                raise ValueError(f"ConsolidationConfig.{f.name} must be {f.type}, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"ConsolidationConfig.{f.name} must be finite, got {v!r}")
        for name in FRACTIONS:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"ConsolidationConfig.{name} must be in [0, 1], got {getattr(self, name)!r}")
        positive = {"p": self.p, "chunk_size": self.chunk_size, "batch_size": self.batch_size,
                    "residual_max": self.residual_max, "micro_batches": self.micro_batches, "lora_rank": self.lora_rank}
        for name, v in positive.items():
            if v < 1:
                raise ValueError(f"ConsolidationConfig.{name} must be >= 1, got {v!r}")
        for name in ("steps", "n_self", "warmup", "seed", "update_steps", "replay_size", "study_wordings", "about_rows",
                     "residual_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"ConsolidationConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.retention_frac + self.practice_frac > 1:
            raise ValueError("ConsolidationConfig.retention_frac + practice_frac must be <= 1, got "
                             f"{self.retention_frac} + {self.practice_frac}")
        if self.fact_rows() < 1:
            raise ValueError(f"ConsolidationConfig.retention_frac and practice_frac leave no fact rows in a batch of "
                             f"{self.batch_size}: lower them or raise batch_size")
        if not 1 <= self.k <= 1000:
            raise ValueError(f"ConsolidationConfig.k must be in [1, 1000], got {self.k!r}")
        for name in ("lr", "update_lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ConsolidationConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.gold_boost < 1:
            raise ValueError(f"ConsolidationConfig.gold_boost must be >= 1, got {self.gold_boost!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"ConsolidationConfig.backend must be one of {backend_names()}, got {self.backend!r}")
        BACKENDS[self.backend].check_config(self)
        if self.retention_corpus not in RETENTION_CORPORA:
            raise ValueError(f"ConsolidationConfig.retention_corpus must be one of {RETENTION_CORPORA}, "
                             f"got {self.retention_corpus!r}")
        if self.retention_context not in RETENTION_CONTEXTS:
            raise ValueError(f"ConsolidationConfig.retention_context must be one of {RETENTION_CONTEXTS}, "
                             f"got {self.retention_context!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"ConsolidationConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.init not in INITS:
            raise ValueError(f"ConsolidationConfig.init must be one of {INITS}, got {self.init!r}")
        if self.standins not in STANDINS:
            raise ValueError(f"ConsolidationConfig.standins must be one of {STANDINS}, got {self.standins!r}")
        if self.residual_min > self.residual_max:
            raise ValueError(f"ConsolidationConfig.residual_min must be <= residual_max, got {self.residual_min} > "
                             f"{self.residual_max}")

    @classmethod
    def from_record(cls, record: dict) -> ConsolidationConfig:
        """The config a run recorded (``asdict`` of it). Fields added after the run take today's defaults: for a
        recipe field that is the behaviour from before it existed; a :data:`COMPUTE_ONLY` field may differ from what
        the run did, which :meth:`same_recipe` ignores. Unknown keys raise a ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(record) - names)
        if unknown:
            raise ValueError(f"not ConsolidationConfig fields: {unknown}")
        return cls(**record)

    def same_recipe(self, other: ConsolidationConfig) -> bool:
        """Whether ``other`` trains the same cartridge: every field equal except :data:`COMPUTE_ONLY` ones (float
        rounding aside)."""
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(self) if f.name not in COMPUTE_ONLY)

    def row_counts(self) -> tuple[int, int, int]:
        """(fact, retention, practice) rows of each training batch."""
        n_ret = round(self.retention_frac * self.batch_size)
        n_prac = round(self.practice_frac * self.batch_size)
        return self.batch_size - n_ret - n_prac, n_ret, n_prac

    def fact_rows(self) -> int:
        """Rows of each batch that ask about the items being consolidated."""
        return self.row_counts()[0]


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as :class:`ConsolidationConfig` overrides (``stmltm measure --set``,
    ``benchmarks/ltm_recipe.py --set``): VALUE is read as JSON (numbers, ``true``/``false``), else kept as text
    (``init=text``). A pair without ``=``, an unknown key, a value of another type than the field's default or one
    the config refuses raises a ``ValueError`` naming it, before any model loads."""
    default = ConsolidationConfig()
    names = {f.name for f in fields(ConsolidationConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{pair!r}: a recipe override is KEY=VALUE, e.g. steps=200")
        if key not in names:
            raise ValueError(f"{key!r} is not a ConsolidationConfig field (fields: {', '.join(sorted(names))})")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        was = getattr(default, key)
        if isinstance(was, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if was is not None and type(value) is not type(was):
            raise ValueError(f"{key}={text}: expected {type(was).__name__}, like the default {was!r}")
        if key in out:
            raise ValueError(f"{key} is set twice ({out[key]!r} and {value!r})")
        out[key] = value
    ConsolidationConfig(**out)  # the config's own checks (ranges, names) run now
    return out
