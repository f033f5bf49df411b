"""Upstream's own ``from_local`` is the oracle: our random checkpoints have the real files' shape
(it loads them), and ``load_model`` runs exactly the weights upstream runs.

Upstream's loaders build the real sizes; here their module constructors (``T3``, ``S3Gen``) are
swapped for ones that build the checkpoint's reduced sizes, and nothing else of theirs changes:
file names, strictness, unwrapping and deletions stay upstream's. Nano and multilingual v3 are
upstream main's, not 0.1.7's: main's ``from_local`` differs from 0.1.7's only in the backbone
name (``GPT2_small``) and the T3 file name (``t3_nano_v1`` / ``t3_mtl23ls_v3``), so those two
deltas are applied to 0.1.7's ``from_local`` here, and nothing more.

Offline, 0.1.7's ``MTLTokenizer.__init__`` fails outright: pkuseg downloads its model from
GitHub and raises ``ConnectionError``. Upstream treats a missing ``spacy_pkuseg`` package as soft
(no segmentation), so the oracle runs with the package hidden; the Cangjie table download only
logs a warning.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from chatterbox.models.t3 import T3
from chatterbox.models.t3.modules.t3_config import T3Config
from safetensors.torch import load_file, save_file

from common.variants import FILES, Variant
from tests.support.checkpoints import Checkpoints, linked_copy
from tests.support.hub import use_hub_cache
from worker.engine.errors import InvalidCheckpointError, ModelNotFoundError
from worker.engine.model.architecture import assemble_s3gen, resize_t3_config, t3_config
from worker.engine.model.loading import load_model
from worker.engine.model.random_checkpoint import architecture
from worker.engine.model.random_pack import LanguagePack
from worker.engine.model.weights import DERIVED_BUFFERS

MODELS = [
    (Variant.ENGLISH, None),
    (Variant.TURBO, None),
    (Variant.NANO, None),
    (Variant.MULTILINGUAL, "v2"),
    (Variant.MULTILINGUAL, "v3"),
]


def upstream_from_local(
    directory: Path, variant: Variant, t3_model: str | None, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Upstream's ``from_local`` on ``directory``, at the checkpoint's reduced sizes."""
    import chatterbox.mtl_tts as mtl
    import chatterbox.tts as english
    import chatterbox.tts_turbo as turbo

    module: Any = {Variant.ENGLISH: english, Variant.MULTILINGUAL: mtl}.get(variant, turbo)
    arch = json.loads((directory / "random_weights.json").read_text())["architecture"]

    def small_t3(hp: T3Config | None = None) -> T3:
        hp = hp or T3Config.english_only()
        if variant is Variant.NANO:
            hp.llama_config_name = "GPT2_small"  # main's delta 1 of 2
        return T3(resize_t3_config(hp, arch["t3"]))

    def small_s3gen(meanflow: bool = False) -> Any:
        return assemble_s3gen(arch["s3gen"], meanflow=meanflow)

    with monkeypatch.context() as patch:
        patch.setattr(module, "T3", small_t3)
        patch.setattr(module, "S3Gen", small_s3gen)
        _rename_t3_file(patch, module, variant, t3_model)
        patch.setitem(sys.modules, "spacy_pkuseg", None)  # upstream's soft path (see above)
        cls = {Variant.ENGLISH: "ChatterboxTTS", Variant.MULTILINGUAL: "ChatterboxMultilingualTTS"}
        return getattr(module, cls.get(variant, "ChatterboxTurboTTS")).from_local(directory, "cpu")


def _rename_t3_file(
    patch: pytest.MonkeyPatch, module: Any, variant: Variant, t3_model: str | None
) -> None:
    """Main's delta 2 of 2: 0.1.7 reads t3_turbo_v1 / t3_mtl23ls_v2 where main reads these."""
    renamed = "t3_nano_v1.safetensors" if variant is Variant.NANO else None
    if t3_model == "v3":
        renamed = "t3_mtl23ls_v3.safetensors"
    if not renamed:
        return
    loader_name = "load_safetensors" if variant is Variant.MULTILINGUAL else "load_file"
    original = getattr(module, loader_name)

    def load(path: Path) -> Any:
        return original(
            Path(path).with_name(renamed) if Path(path).name.startswith("t3_") else path
        )

    patch.setattr(module, loader_name, load)


def assert_same_weights(ours: torch.nn.Module, theirs: torch.nn.Module, name: str) -> None:
    mine, upstream = ours.state_dict(), theirs.state_dict()
    assert mine.keys() == upstream.keys(), name
    unequal = [k for k in mine if not torch.equal(mine[k], upstream[k])]
    assert not unequal, f"{name}: {unequal[:5]}"


@pytest.mark.parametrize(("variant", "t3_model"), MODELS, ids=lambda m: str(m))
def test_upstream_and_we_load_the_same_weights(
    checkpoints: Checkpoints,
    variant: Variant,
    t3_model: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    directory = checkpoints(variant)
    theirs = upstream_from_local(directory, variant, t3_model, monkeypatch)
    ours = load_model(directory, device="cpu", t3_model=t3_model)
    assert_same_weights(ours.t3, theirs.t3, "t3")
    assert_same_weights(ours.s3gen, theirs.s3gen, "s3gen")
    assert_same_weights(ours.voice_encoder, theirs.ve, "ve")
    if t3_model:
        assert ours.choice.label == f"chatterbox-multilingual {t3_model}"


def test_multilingual_v2_and_v3_are_different_files(checkpoints: Checkpoints) -> None:
    directory = checkpoints(Variant.MULTILINGUAL)
    v2, v3 = (
        load_model(directory, device="cpu", builtin_voice=False, t3_model=m) for m in ("v2", "v3")
    )
    assert not torch.equal(v2.t3.speech_head.weight, v3.t3.speech_head.weight)
    assert v3.choice.label in v3.describe()


def test_turbo_checkpoint_keeps_wte_as_the_real_file_does(
    checkpoints: Checkpoints, caplog: pytest.LogCaptureFixture
) -> None:
    """The real t3_turbo_v1.safetensors holds GPT-2's token table; loading it failed before."""
    directory = checkpoints(Variant.TURBO)
    assert "tfmr.wte.weight" in load_file(str(directory / "t3_turbo_v1.safetensors"))
    with caplog.at_level(logging.INFO, logger="worker.engine.model.weights"):
        model = load_model(directory, device="cpu", builtin_voice=False)
    assert not hasattr(model.t3.tfmr, "wte")
    assert (
        "t3_turbo_v1.safetensors: dropped after loading, as upstream does: tfmr.wte.weight"
        in caplog.text
    )


def rewrite(source: Path, target: Path, name: str, change: Any) -> Path:
    """A linked copy of ``source`` whose file ``name`` is rewritten as ``change(state)`` says."""
    directory = linked_copy(source, target, leave_out=(name,))
    state = (
        dict(load_file(str(source / name)))
        if name.endswith(".safetensors")
        else torch.load(source / name, weights_only=True)
    )
    change(state)
    if name.endswith(".safetensors"):
        save_file(state, str(directory / name))
    else:
        torch.save(state, directory / name)
    return directory


def test_a_missing_t3_key_names_the_file_and_the_key(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    key = "speech_head.weight"
    broken = rewrite(
        checkpoints(Variant.NANO), tmp_path / "nano", "t3_nano_v1.safetensors", lambda s: s.pop(key)
    )
    with pytest.raises(InvalidCheckpointError) as error:
        load_model(broken, device="cpu", builtin_voice=False)
    assert str(broken / "t3_nano_v1.safetensors") in str(error.value) and key in str(error.value)


def test_turbo_s3gen_is_strict_as_upstream(checkpoints: Checkpoints, tmp_path: Path) -> None:
    extra = rewrite(
        checkpoints(Variant.NANO),
        tmp_path / "nano",
        "s3gen_meanflow.safetensors",
        lambda s: s.update(surplus=torch.zeros(1)),
    )
    with pytest.raises(
        InvalidCheckpointError, match=r"s3gen_meanflow\.safetensors .*unexpected key\(s\): surplus"
    ):
        load_model(extra, device="cpu", builtin_voice=False)


def test_english_s3gen_tolerates_what_upstream_tolerates_and_logs_it(
    english_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def change(state: dict[str, torch.Tensor]) -> None:
        state.pop("tokenizer._mel_filters")
        state["surplus"] = torch.zeros(1)

    loose = rewrite(english_dir, tmp_path / "loose", "s3gen.safetensors", change)
    with caplog.at_level(logging.INFO, logger="worker.engine.model.weights"):
        model = load_model(loose, device="cpu", builtin_voice=False)
    reference = load_model(english_dir, device="cpu", builtin_voice=False)
    assert torch.equal(model.s3gen.tokenizer._mel_filters, reference.s3gen.tokenizer._mel_filters)
    line = next(r.getMessage() for r in caplog.records if "s3gen.safetensors" in r.getMessage())
    assert "surplus" in line and "tokenizer._mel_filters" in line


def test_english_s3gen_missing_a_weight_it_needs_fails(english_dir: Path, tmp_path: Path) -> None:
    key = "flow.input_embedding.weight"
    broken = rewrite(english_dir, tmp_path / "broken", "s3gen.safetensors", lambda s: s.pop(key))
    with pytest.raises(InvalidCheckpointError) as error:
        load_model(broken, device="cpu", builtin_voice=False)
    assert str(broken / "s3gen.safetensors") in str(error.value) and key in str(error.value)


def test_a_multilingual_directory_without_the_t3_asked_for_names_what_it_has(
    checkpoints: Checkpoints, tmp_path: Path
) -> None:
    fork = linked_copy(
        checkpoints(Variant.MULTILINGUAL),
        tmp_path / "fork",
        leave_out=("t3_mtl23ls_v3.safetensors",),
    )
    repo = "someone/chatterbox-fork"
    with pytest.raises(ModelNotFoundError) as error:
        load_model(fork, device="cpu", repo_id=repo, t3_model="v3")
    message = str(error.value)
    assert "lacks t3_mtl23ls_v3.safetensors" in message
    assert "it holds t3_mtl23ls_v2.safetensors" in message and repo in message
    model = load_model(fork, device="cpu", builtin_voice=False, repo_id=repo, t3_model="v2")
    assert model.choice.label == f"chatterbox-multilingual v2 ({repo})"


def stage_for_from_local(pack: LanguagePack, staged: Path) -> Path:
    """The public loaders' recipe for a pack: a directory for upstream's ``from_local`` with the
    pack's files and the base repository's, the pack's T3 and decoder under the names
    ``from_local`` reads (``t3_mtl23ls_v2.safetensors``, ``s3gen.pt``)."""
    staged.mkdir()
    for directory in pack.repositories.values():
        for path in directory.iterdir():
            (staged / path.name).symlink_to(path)
    (staged / "t3_mtl23ls_v2.safetensors").symlink_to(pack.pack_dir / "t3_zh_cmn.safetensors")
    (staged / "s3gen.pt").symlink_to(pack.pack_dir / "s3gen_v3.pt")
    return staged


def test_a_pack_loads_as_the_public_recipe_loads_it(
    language_pack: LanguagePack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Upstream's from_local over the staged pack refuses the published decoder exactly as it
    refuses the real one; loaders that keep the pack's decoder fill in the two buffers with
    upstream's own constructor, and then it loads. We load the same files from the stand-in
    Hub (two repositories) and run exactly its weights."""
    staged = stage_for_from_local(language_pack, tmp_path / "staged")
    with pytest.raises(RuntimeError) as refused:
        upstream_from_local(staged, Variant.MULTILINGUAL, None, monkeypatch)
    missing = str(refused.value).split("Missing key(s) in state_dict:")[1]
    assert missing.strip() == '"tokenizer._mel_filters", "tokenizer.window".'
    arch = json.loads((language_pack.pack_dir / "random_weights.json").read_text())["architecture"]
    state = torch.load(language_pack.pack_dir / "s3gen_v3.pt", weights_only=True)
    computed = assemble_s3gen(arch["s3gen"], meanflow=False).state_dict()
    state.update({key: computed[key] for key in DERIVED_BUFFERS})
    (staged / "s3gen.pt").unlink()
    torch.save(state, staged / "s3gen.pt")
    theirs = upstream_from_local(staged, Variant.MULTILINGUAL, None, monkeypatch)
    use_hub_cache(monkeypatch, language_pack.hf_home, language_pack.pkuseg_home)
    ours = load_model(None, device="cpu", repo_id=language_pack.repo_id)
    assert_same_weights(ours.t3, theirs.t3, "t3")
    assert_same_weights(ours.s3gen, theirs.s3gen, "s3gen")
    assert_same_weights(ours.voice_encoder, theirs.ve, "ve")
    assert ours.builtin_voice is not None
    for key, value in theirs.conds.gen.items():
        assert not torch.is_tensor(value) or torch.equal(ours.builtin_voice.gen[key], value), key


def test_full_size_is_upstreams_and_nano_is_gpt2_small() -> None:
    assert all(architecture(v, "full") is None for v in Variant)
    nano = t3_config(Variant.NANO)
    from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS

    backbone = LLAMA_CONFIGS[nano.llama_config_name]
    assert nano.llama_config_name == "GPT2_small"
    assert (
        backbone["n_embd"],
        backbone["hidden_size"],
        backbone["n_layer"],
        backbone["n_head"],
    ) == (768, 768, 12, 12)
    assert (backbone["vocab_size"], backbone["n_positions"], nano.text_tokens_dict_size) == (
        50276,
        8196,
        50276,
    )
    assert t3_config(Variant.TURBO).llama_config_name == "GPT2_medium"


def test_tiny_nano_is_smaller_than_tiny_turbo(checkpoints: Checkpoints) -> None:
    sizes = {
        v: json.loads((checkpoints(v) / "random_weights.json").read_text())["parameters"]
        for v in (Variant.TURBO, Variant.NANO)
    }
    assert sizes[Variant.NANO] < sizes[Variant.TURBO]
    assert FILES[Variant.NANO].t3 != FILES[Variant.TURBO].t3
