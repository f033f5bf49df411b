"""Build the upstream Chatterbox modules, at their real sizes or at reduced ones.

Real checkpoints use the upstream constructors unchanged (``T3(hp)``, ``S3Gen()``,
``VoiceEncoder()``). A random-weight checkpoint may carry an ``architecture`` section in its
marker file; then the *same upstream classes* are instantiated with smaller widths and depths.
Several upstream constructors hard-code their sub-module sizes (``S3Token2Mel`` builds its encoder,
decoder and tokenizer itself; ``S3Tokenizer`` ignores its ``config`` argument), so the reduced
S3Gen is assembled here from its parts, attribute for attribute as ``S3Token2Wav.__init__`` does.
``tests/test_architecture.py`` checks that this assembly at upstream sizes matches ``S3Gen()``.
"""

from __future__ import annotations

import copy
from typing import Any

import librosa
import torch
from chatterbox.models.s3gen import S3Gen
from chatterbox.models.s3gen.configs import CFM_PARAMS
from chatterbox.models.s3gen.decoder import ConditionalDecoder
from chatterbox.models.s3gen.f0_predictor import ConvRNNF0Predictor
from chatterbox.models.s3gen.flow import CausalMaskedDiffWithXvec
from chatterbox.models.s3gen.flow_matching import CausalConditionalCFM
from chatterbox.models.s3gen.hifigan import HiFTGenerator
from chatterbox.models.s3gen.transformer.upsample_encoder import UpsampleConformerEncoder
from chatterbox.models.s3gen.utils.mel import mel_spectrogram
from chatterbox.models.s3gen.xvector import CAMPPlus
from chatterbox.models.s3tokenizer import S3_SR, S3Tokenizer
from chatterbox.models.t3 import T3
from chatterbox.models.t3.llama_configs import LLAMA_CONFIGS
from chatterbox.models.t3.modules.t3_config import T3Config
from chatterbox.models.voice_encoder import VoiceEncoder
from s3tokenizer.model_v2 import ModelConfig, S3TokenizerV2

from common.audio import SAMPLE_RATE
from common.variants import Variant

Spec = dict[str, Any]

# Upstream sizes, written out so the assembly below can be checked against ``S3Gen()``.
S3GEN_FULL: Spec = {
    "tokenizer": {"n_audio_state": 1280, "n_audio_head": 20, "n_audio_layer": 6},
    "encoder": {"attention_heads": 8, "linear_units": 2048, "num_blocks": 6},
    "decoder": {
        "channels": [256],
        "attention_head_dim": 64,
        "n_blocks": 4,
        "num_mid_blocks": 12,
        "num_heads": 8,
    },
    "hift": {"base_channels": 512, "f0_cond_channels": 512},
    "campplus": {"growth_rate": 32, "init_channels": 128},
}


def _register_gpt2_small() -> None:
    """Nano's backbone (upstream main's ``GPT2_small``; the 0.1.7 wheel lacks it): GPT-2
    medium's config with GPT-2 small's width, depth and heads."""
    if "GPT2_small" not in LLAMA_CONFIGS:
        LLAMA_CONFIGS["GPT2_small"] = _gpt2_resized(
            LLAMA_CONFIGS["GPT2_medium"], {"n_embd": 768, "n_layer": 12, "n_head": 12}
        )


# The generic (Llama) names of GPT-2's sizes; a GPT-2 config holds both, and they must agree.
_GPT2_NAMES = {
    "hidden_size": "n_embd",
    "num_hidden_layers": "n_layer",
    "num_attention_heads": "n_head",
}


def _gpt2_resized(base: Spec, overrides: Spec) -> Spec:
    """A GPT-2 config with ``overrides``, given in either naming."""
    config = copy.deepcopy(base)
    for key, value in overrides.items():
        config[_GPT2_NAMES.get(key, key)] = value
    config["hidden_size"] = config["n_embd"]
    return config


_register_gpt2_small()


def base_t3_config(variant: Variant) -> T3Config:
    """The ``T3Config`` upstream's ``from_local`` builds for a variant, at real sizes."""
    if variant is Variant.MULTILINGUAL:
        return T3Config.multilingual()
    if variant.turbo_family:
        return _turbo_config(nano=variant is Variant.NANO)
    return T3Config.english_only()


def t3_config(variant: Variant, spec: Spec | None = None) -> T3Config:
    """The upstream ``T3Config`` of a variant, with a reduced backbone when ``spec`` says so."""
    return resize_t3_config(base_t3_config(variant), spec)


def resize_t3_config(hp: T3Config, spec: Spec | None) -> T3Config:
    """``hp`` with the reduced sizes of a random checkpoint's ``spec`` (unchanged if none)."""
    if spec:
        hp.text_tokens_dict_size = spec.get("text_tokens_dict_size", hp.text_tokens_dict_size)
        hp.max_text_tokens = spec.get("max_text_tokens", hp.max_text_tokens)
        hp.max_speech_tokens = spec.get("max_speech_tokens", hp.max_speech_tokens)
        hp.llama_config_name = _register_backbone(hp.llama_config_name, spec.get("backbone", {}))
    return hp


def _turbo_config(nano: bool) -> T3Config:
    """Turbo's (and Nano's) hyper-parameters, as ``ChatterboxTurboTTS.from_local`` sets them."""
    hp = T3Config(text_tokens_dict_size=50276)
    hp.llama_config_name = "GPT2_small" if nano else "GPT2_medium"
    hp.speech_tokens_dict_size = 6563
    hp.input_pos_emb = None
    hp.speech_cond_prompt_len = 375
    hp.use_perceiver_resampler = False
    hp.emotion_adv = False
    return hp


def _register_backbone(base_name: str, overrides: Spec) -> str:
    """Add a reduced copy of an upstream backbone config to ``LLAMA_CONFIGS`` (a plain dict).

    GPT-2 sizes may be given in GPT-2's names (``n_layer``) or the generic ones."""
    if not overrides:
        return base_name
    base = LLAMA_CONFIGS[base_name]
    if base.get("model_type") == "gpt2":
        config = _gpt2_resized(base, overrides)
    else:
        config = copy.deepcopy(base)
        config.update(overrides)
    name = base_name + "/" + "-".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    LLAMA_CONFIGS[name] = config
    return name


def build_t3(variant: Variant, spec: Spec | None = None) -> T3:
    """The whole T3 upstream loads its checkpoint into, ``tfmr.wte`` included for Turbo/Nano
    (see :func:`drop_unused_t3_modules`)."""
    return T3(t3_config(variant, spec))


def drop_unused_t3_modules(t3: T3, variant: Variant) -> list[str]:
    """Delete what upstream deletes after loading; return the state-dict keys dropped.

    Turbo and Nano feed embeddings to GPT-2 directly, so its own token table ``tfmr.wte`` is
    unused; upstream's ``from_local`` loads it (the files hold it) and then deletes it."""
    if not variant.turbo_family:
        return []
    dropped = [f"tfmr.wte.{name}" for name in t3.tfmr.wte.state_dict()]
    del t3.tfmr.wte
    return dropped


def build_voice_encoder() -> VoiceEncoder:
    return VoiceEncoder()


def build_s3gen(variant: Variant, spec: Spec | None = None) -> S3Gen:
    meanflow = variant.turbo_family
    if not spec:
        return S3Gen(meanflow=meanflow)
    return assemble_s3gen(spec, meanflow=meanflow)


def assemble_s3gen(spec: Spec, *, meanflow: bool) -> S3Gen:
    """An ``S3Gen`` of the upstream classes with the sizes in ``spec`` (see module doc)."""
    s3gen: S3Gen = S3Gen.__new__(S3Gen)
    torch.nn.Module.__init__(s3gen)
    s3gen.tokenizer = _s3_tokenizer(spec["tokenizer"])
    s3gen.mel_extractor = mel_spectrogram
    s3gen.speaker_encoder = CAMPPlus(memory_efficient=False, **spec["campplus"])
    s3gen.meanflow = meanflow
    s3gen.flow = CausalMaskedDiffWithXvec(
        encoder=_flow_encoder(spec["encoder"]),
        decoder=CausalConditionalCFM(
            spk_emb_dim=80,
            cfm_params=CFM_PARAMS,
            estimator=ConditionalDecoder(
                in_channels=320,
                out_channels=80,
                causal=True,
                dropout=0.0,
                act_fn="gelu",
                meanflow=meanflow,
                **spec["decoder"],
            ),
        ),
    )
    s3gen.resamplers = {}
    hift = spec["hift"]
    s3gen.mel2wav = HiFTGenerator(
        sampling_rate=SAMPLE_RATE,
        base_channels=hift["base_channels"],
        upsample_rates=[8, 5, 3],
        upsample_kernel_sizes=[16, 11, 7],
        source_resblock_kernel_sizes=[7, 7, 11],
        source_resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        f0_predictor=ConvRNNF0Predictor(cond_channels=hift["f0_cond_channels"]),
    )
    n_trim = SAMPLE_RATE // 50
    trim_fade = torch.zeros(2 * n_trim)
    trim_fade[n_trim:] = (torch.cos(torch.linspace(torch.pi, 0, n_trim)) + 1) / 2
    s3gen.register_buffer("trim_fade", trim_fade, persistent=False)
    s3gen.estimator_dtype = "fp32"
    return s3gen


def _flow_encoder(spec: Spec) -> UpsampleConformerEncoder:
    return UpsampleConformerEncoder(
        output_size=512,
        input_size=512,
        dropout_rate=0.1,
        positional_dropout_rate=0.1,
        attention_dropout_rate=0.1,
        normalize_before=True,
        input_layer="linear",
        pos_enc_layer_type="rel_pos_espnet",
        selfattention_layer_type="rel_selfattn",
        use_cnn_module=False,
        macaron_style=False,
        **spec,
    )


def _s3_tokenizer(spec: Spec) -> S3Tokenizer:
    """``S3Tokenizer`` with a given size (its own ``__init__`` drops the config it is given)."""
    config = ModelConfig(**spec)
    tokenizer: S3Tokenizer = S3Tokenizer.__new__(S3Tokenizer)
    S3TokenizerV2.__init__(tokenizer, "speech_tokenizer_v2_25hz", config)
    tokenizer.n_fft = 400
    mel_filters = librosa.filters.mel(sr=S3_SR, n_fft=tokenizer.n_fft, n_mels=config.n_mels)
    tokenizer.register_buffer("_mel_filters", torch.FloatTensor(mel_filters))
    tokenizer.register_buffer("window", torch.hann_window(tokenizer.n_fft))
    return tokenizer


def count_parameters(*modules: torch.nn.Module) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())
