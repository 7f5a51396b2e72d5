"""Shared fixtures: a tiny random Llama (unit tests) and the real default model (tests marked slow)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tokenizer():
    from stmltm_nb.models import load_tokenizer

    return load_tokenizer()


@pytest.fixture(scope="session")
def tiny(tokenizer):
    from stmltm_nb.models import tiny_llama

    return tiny_llama(tokenizer, seed=0)


@pytest.fixture(scope="session")
def real():
    from stmltm_nb.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def facts():
    from stmltm_nb.memory.facts import load_facts

    return load_facts()
