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
def converted_model():
    """The default model's converted folder in the user's cache (converted once per machine, ~1 min)."""
    from stmltm_nb.models import convert_default_model

    return convert_default_model(verbose=False)


def link_converted_model(cache, converted) -> None:
    """Put a link to the converted default model into the fresh cache folder ``cache``: jobs on the tiny model still
    read the default tokenizer and context window from it, and without it each test converted the GGUF file again
    (≈ 70 s a test on 2 cores)."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / converted.name).symlink_to(converted, target_is_directory=True)


@pytest.fixture
def tiny_jobs(tiny, tmp_path, monkeypatch, converted_model):
    """Jobs load the tiny model instead of the default one, and ``STMLTM_CACHE`` is a fresh folder
    (``tmp_path / "cache"``) holding only the converted default model. Returns ``tmp_path``."""
    import stmltm_nb.models as models

    monkeypatch.setattr(models, "load_model", lambda name="default", **kw: tiny)
    link_converted_model(tmp_path / "cache", converted_model)
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture(scope="session")
def real():
    from stmltm_nb.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def facts():
    from stmltm_nb.memory.facts import load_facts

    return load_facts()


def pytest_terminal_summary(terminalreporter):
    """What the run left on the machine, for reading a slow or failed CI run: the test process's peak memory, the
    load average (a process left spinning shows here) and any child process still alive."""
    import os
    import resource

    import psutil

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux -> GiB
    kids = []
    for c in psutil.Process().children(recursive=True):
        try:
            kids.append(f"{c.pid} {' '.join(c.cmdline()[:3])}")
        except psutil.Error:  # gone (or unreadable) since it was listed
            pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    terminalreporter.write_line(f"test process: peak memory {peak:.1f} GiB; load average {load}; "
                                f"children alive: {kids or 'none'}")
