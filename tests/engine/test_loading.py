"""Finding and loading checkpoints: local directory, Hugging Face cache, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from common.variants import FILES, ModelChoice, Variant
from tests.support.checkpoints import Checkpoints
from worker.engine.errors import InvalidCheckpointError, ModelNotFoundError
from worker.engine.model.architecture import count_parameters
from worker.engine.model.loading import load_model, pick_device, resolve_checkpoint


def test_random_checkpoint_loads_through_model_path_and_says_so(english_dir: Path) -> None:
    model = load_model(english_dir, device="cpu")
    assert model.variant is Variant.ENGLISH
    assert model.random_weights and model.weights == "random weights"
    assert "random weights" in model.describe()
    assert model.choice.label == "chatterbox" and model.describe().startswith("chatterbox (")
    assert model.builtin_voice is not None
    assert model.device == torch.device("cpu")


def test_tiny_checkpoint_is_small(english_dir: Path) -> None:
    model = load_model(english_dir, device="cpu", builtin_voice=False)
    assert count_parameters(model.t3, model.s3gen, model.voice_encoder) <= 52_000_000


def test_upstream_file_layout(english_dir: Path) -> None:
    for name in (*FILES[Variant.ENGLISH].required, "conds.pt"):
        assert (english_dir / name).is_file(), name


def test_missing_weights_offline_give_one_actionable_error(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError) as error:
        resolve_checkpoint(ModelChoice(Variant.ENGLISH), tmp_path / "nowhere")
    message = str(error.value)
    assert "t3_cfg.safetensors" in message and str(tmp_path / "nowhere") in message
    assert "ResembleAI/chatterbox" in message and "Hugging Face cache" in message
    assert "make_random_checkpoint.py" in message
    assert "Traceback" not in message


def test_an_incomplete_directory_is_reported(english_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(english_dir, partial)
    (partial / "s3gen.safetensors").unlink()
    with pytest.raises(ModelNotFoundError, match=r"lacks s3gen\.safetensors"):
        load_model(partial, device="cpu")


def test_a_variant_mismatch_is_reported(english_dir: Path) -> None:
    with pytest.raises(InvalidCheckpointError, match="MODEL_VARIANT=chatterbox"):
        load_model(english_dir, variant="chatterbox-turbo", device="cpu")


def test_weights_that_do_not_fit_the_architecture(english_dir: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    shutil.copytree(english_dir, wrong)
    marker = json.loads((wrong / "random_weights.json").read_text())
    marker["architecture"]["t3"]["backbone"]["num_hidden_layers"] = 2
    (wrong / "random_weights.json").write_text(json.dumps(marker))
    with pytest.raises(InvalidCheckpointError, match="do not fit"):
        load_model(wrong, device="cpu")


def test_device_is_picked_automatically() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device().type == expected
    assert pick_device("cpu") == torch.device("cpu")


def test_dtype_is_configurable(checkpoints: Checkpoints) -> None:
    model = load_model(checkpoints(Variant.ENGLISH), device="cpu", dtype="bfloat16")
    assert next(model.t3.parameters()).dtype == torch.bfloat16
    with pytest.raises(InvalidCheckpointError, match="dtype"):
        load_model(checkpoints(Variant.ENGLISH), device="cpu", dtype="int8")
