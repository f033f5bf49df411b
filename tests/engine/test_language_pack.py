"""Single Language Packs load as published: the pack's own T3, decoder and tokenizer, the base
repository's voice encoder, built-in voice and Cangjie table; from the Hub cache (two
repositories) or from one directory holding both, as the download script leaves it.

The oracle (upstream's ``from_local`` over a staged directory) is in test_upstream_loading.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from common.settings import Settings
from common.variants import BASE_REPO_ID, PKUSEG_DIR, Variant
from tests.support.hub import use_hub_cache
from worker.engine.errors import InvalidCheckpointError, ModelNotFoundError
from worker.engine.model.loading import load_model
from worker.engine.model.random_pack import LanguagePack, publish_hub_cache
from worker.engine.model.weights import DERIVED_BUFFERS, read_state
from worker.engine_config import engine_config


def one_directory(pack: LanguagePack, target: Path, leave_out: tuple[str, ...] = ()) -> Path:
    """Both repositories' files side by side (links), with pkuseg's model: a MODEL_PATH."""
    target.mkdir()
    for directory in pack.repositories.values():
        for path in directory.iterdir():
            if path.name not in leave_out:
                (target / path.name).symlink_to(path)
    (target / PKUSEG_DIR).symlink_to(pack.pkuseg_home)
    return target


def test_the_pack_is_written_as_published(language_pack: LanguagePack) -> None:
    names = {repo: {p.name for p in d.iterdir()} for repo, d in language_pack.repositories.items()}
    assert names == {
        language_pack.repo_id: {
            "t3_zh_cmn.safetensors",
            "s3gen_v3.pt",
            "grapheme_mtl_merged_expanded_v1.json",
            "random_weights.json",
        },
        BASE_REPO_ID: {"ve.pt", "conds.pt", "Cangjie5_TC.json"},
    }
    decoder = read_state(language_pack.pack_dir / "s3gen_v3.pt")
    assert not set(DERIVED_BUFFERS) & set(decoder)
    assert "flow.input_embedding.weight" in decoder


def test_a_pack_starts_offline_from_the_hub_cache(
    language_pack: LanguagePack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The worker's own start path: Settings -> engine_config -> load_model, MODEL_PATH empty."""
    use_hub_cache(monkeypatch, language_pack.hf_home, language_pack.pkuseg_home)
    settings = Settings(model_repo_id="zh-cmn", model_path=str(tmp_path / "models"), device="cpu")
    model = engine_config(settings).load_model()
    assert model.variant is Variant.MULTILINGUAL and model.random_weights
    assert model.choice.label == f"chatterbox-multilingual ({language_pack.repo_id})"
    assert model.builtin_voice is not None  # the base repository's conds.pt
    assert model.checkpoint_dir.parent.parent.name.endswith("Chatterbox-Multilingual-zh-cmn")
    assert model.tokenize("你好", "zh")


def test_hi_without_the_voice_encoder_stops_the_start_naming_it(
    language_pack: LanguagePack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for name in ("conds.pt", "Cangjie5_TC.json"):  # the base repository's, but no ve.pt
        (base / name).symlink_to(language_pack.base_dir / name)
    hi = "ResembleAI/Chatterbox-Multilingual-hi"
    publish_hub_cache({hi: language_pack.pack_dir, BASE_REPO_ID: base}, tmp_path / "hf")
    use_hub_cache(monkeypatch, tmp_path / "hf")
    settings = Settings(model_repo_id="hi", model_path=str(tmp_path / "models"), device="cpu")
    with pytest.raises(ModelNotFoundError) as error:
        engine_config(settings).load_model()
    message = str(error.value)
    assert "missing ve.pt (voice encoder) of ResembleAI/chatterbox" in message
    assert "python scripts/download_weights.py --repo-id hi" in message
    assert "HF_HUB_OFFLINE" in message and "Traceback" not in message


def test_the_pack_loads_from_one_directory_too(language_pack: LanguagePack, tmp_path: Path) -> None:
    directory = one_directory(language_pack, tmp_path / "zh")
    model = load_model(directory, device="cpu", repo_id=language_pack.repo_id)
    assert model.checkpoint_dir == directory and model.builtin_voice is not None


def test_the_pack_decoder_safetensors_is_preferred(
    language_pack: LanguagePack, tmp_path: Path
) -> None:
    directory = one_directory(language_pack, tmp_path / "zh")
    state = read_state(language_pack.pack_dir / "s3gen_v3.pt")
    state["flow.input_embedding.weight"] = torch.ones_like(state["flow.input_embedding.weight"])
    save_file(state, str(directory / "s3gen_v3.safetensors"))
    model = load_model(directory, device="cpu", builtin_voice=False, repo_id=language_pack.repo_id)
    assert bool((model.s3gen.flow.input_embedding.weight == 1).all())


def test_a_learned_key_missing_from_the_pack_decoder_is_named(
    language_pack: LanguagePack, tmp_path: Path
) -> None:
    directory = one_directory(language_pack, tmp_path / "zh", leave_out=("s3gen_v3.pt",))
    state = read_state(language_pack.pack_dir / "s3gen_v3.pt")
    del state["flow.input_embedding.weight"]
    torch.save(state, directory / "s3gen_v3.pt")
    with pytest.raises(InvalidCheckpointError) as error:
        load_model(directory, device="cpu", builtin_voice=False, repo_id=language_pack.repo_id)
    message = str(error.value)
    assert str(directory / "s3gen_v3.pt") in message
    assert "1 missing key(s): flow.input_embedding.weight" in message


def test_multilingual_t3_model_names_the_pack_t3(
    language_pack: LanguagePack, tmp_path: Path
) -> None:
    directory = one_directory(language_pack, tmp_path / "zh")
    (directory / "t3_es_es.safetensors").symlink_to(directory / "t3_zh_cmn.safetensors")
    with pytest.raises(ModelNotFoundError, match=r"t3_es_es\.safetensors, t3_zh_cmn\.safetensors"):
        load_model(directory, device="cpu", repo_id=language_pack.repo_id)
    model = load_model(
        directory,
        device="cpu",
        builtin_voice=False,
        repo_id=language_pack.repo_id,
        t3_model="t3_zh_cmn.safetensors",
    )
    assert model.choice.label == f"chatterbox-multilingual t3_zh_cmn ({language_pack.repo_id})"
    with pytest.raises(ModelNotFoundError) as error:
        load_model(
            directory, device="cpu", repo_id=language_pack.repo_id, t3_model="t3_hi.safetensors"
        )
    message = str(error.value)
    assert "missing t3_hi.safetensors (T3)" in message and language_pack.repo_id in message
    assert f"MODEL_PATH={directory} lacks t3_hi.safetensors (T3)" in message
    assert "--repo-id zh-cmn --t3-model t3_hi.safetensors" in message
