"""Packed (padding-free) batches on the model side: attention that never crosses rows.

The encoder's attention implementation (its config, as loaded) decides the path:

- flash attention (`flash_attention_2/3/4`, kernels): varlen. The rows form one sequence and
  `cu_seq_lens_q/k`, `max_length_q/k` reach the attention layers, which run
  `flash_attn_varlen_func` over each row; no mask, no padding, no wasted FLOPs.
- SDPA and eager: a block-diagonal 4D mask over bins of rows (a token attends to the tokens
  of its own row; the padding at the end of a bin attends to itself, so no softmax row is
  empty). Transformers passes a 4D mask through unchanged. This is the CPU path (fitclass
  loads encoders with SDPA).
- anything else (flex attention, architectures without `position_ids`): no packed path.

Whether a given encoder honours `position_ids` and the mask is checked once per run, not
assumed from its name: `training_batching` runs a few training rows packed and padded and
packs only if both give the same logits (positions that do not start at 0, as in
RoBERTa-like models, or relative position schemes make them differ).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils.generic import is_flash_attention_requested

from fitclass.data.batching import Collator
from fitclass.data.packing import PackedCollator
from fitclass.errors import RecipeError
from fitclass.models.neural import Batching
from fitclass.precision import FP32_CPU, Policy, inference

VARLEN, MASK = "varlen", "mask"
#: Implementations whose attention takes a 4D mask as given (`masking_utils`' early exit).
MASKED_ATTENTION = ("sdpa", "eager")
#: The widest bin of a masked packed batch, in multiples of the model's `max_length` (the
#: collator picks the cheapest width up to it; see `data/packing.py`).
BIN_WIDTH_FACTOR = 4
#: Rows the support probe packs (the shortest, the longest and one between, from the first
#: `PROBE_POOL` training rows).
PROBE_POOL = 256

Collate = Callable[[list[dict[str, Any]]], dict[str, Any]]


def attention_path(encoder: PreTrainedModel) -> str | None:
    """`varlen`, `mask`, or None when the encoder's attention has no packed path."""
    config = encoder.config
    if is_flash_attention_requested(config):
        return VARLEN
    if config._attn_implementation in MASKED_ATTENTION:
        return MASK
    return None


def block_diagonal_mask(sequence_ids: torch.Tensor, implementation: str,
                        dtype: torch.dtype) -> torch.Tensor:
    """(bins, 1, width, width): True (sdpa) or 0.0 (eager, additive) where query and key
    tokens belong to the same row, or are both padding."""
    same = sequence_ids[:, None, :, None] == sequence_ids[:, None, None, :]
    if implementation == "eager":
        blocked = torch.finfo(dtype).min
        return torch.zeros(same.shape, dtype=dtype, device=same.device).masked_fill(~same,
                                                                                   blocked)
    return same


def encode_packed(encoder: PreTrainedModel, input_ids: torch.Tensor,
                  token_type_ids: torch.Tensor | None, position_ids: torch.Tensor,
                  sequence_ids: torch.Tensor, cu_seq_lens: torch.Tensor | None = None,
                  max_seq_len: int | None = None) -> torch.Tensor:
    """Token states of a packed batch (`data/packing.py`), each row attending only to itself:
    varlen boundaries when the batch carries them, else a block-diagonal mask."""
    inputs: dict[str, Any] = {"input_ids": input_ids, "position_ids": position_ids}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    if cu_seq_lens is not None:
        inputs.update(cu_seq_lens_q=cu_seq_lens, cu_seq_lens_k=cu_seq_lens,
                      max_length_q=max_seq_len, max_length_k=max_seq_len)
    else:
        inputs["attention_mask"] = block_diagonal_mask(
            sequence_ids, encoder.config._attn_implementation, encoder.dtype)
    return encoder(**inputs).last_hidden_state


def unsupported(encoder: PreTrainedModel) -> str | None:
    """Why this encoder cannot take packed batches (None when it can, as far as its
    attention implementation and forward signature tell)."""
    implementation = encoder.config._attn_implementation
    if attention_path(encoder) is None:
        return (f"its attention implementation {implementation!r} has no packed path (packing "
                f"needs flash attention, sdpa or eager)")
    if "position_ids" not in inspect.signature(encoder.forward).parameters:
        return (f"{type(encoder).__name__}.forward takes no position_ids, so positions could "
                f"not restart in every row")
    return None


class RowDataset(Protocol):
    """A map-style dataset of row dicts (a list, or `data.tokens.TokenRows`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


def probe_rows(rows: RowDataset) -> list[dict[str, Any]]:
    """The shortest, the longest and a middle row of the first `PROBE_POOL` rows (of any
    map-style dataset of row dicts)."""
    pool = [rows[i] for i in range(min(len(rows), PROBE_POOL))]
    order = sorted(range(len(pool)), key=lambda i: len(pool[i]["input_ids"]))
    picked = sorted({order[0], order[len(order) // 2], order[-1]})
    return [{k: v for k, v in pool[i].items() if k not in ("labels", "row")} for i in picked]


def packed_logits_differ(module: nn.Module, padded: Collate, packed: Collate,
                         rows: list[dict[str, Any]], policy: Policy) -> float | None:
    """The largest logit difference between a packed and a padded batch of `rows`, run as
    the policy says (eval mode, its autocast); None when they agree to the precision's
    tolerance (bf16 and fp16 keep about 3 significant digits)."""
    was_training = module.training
    try:
        with inference(module, policy) as device:
            outputs = [module(**{k: v.to(device) if isinstance(v, torch.Tensor) else v
                                 for k, v in collate(rows).items()})["logits"].float()
                       for collate in (padded, packed)]
    finally:
        module.train(was_training)
    scale = max(1.0, float(outputs[0].abs().max()))
    tolerance = 1e-4 if policy.autocast_dtype is None else 2e-2
    if torch.allclose(outputs[0], outputs[1], rtol=10 * tolerance, atol=tolerance * scale):
        return None
    return float((outputs[0] - outputs[1]).abs().max())


def pad_multiple() -> int:
    """1: no rounding of padded lengths. Rounding to 8 (tensor cores) costs 16% more tokens
    on SST-2 and 24% on TREC (`bench/packing_tokens.py`); without a GPU timing that shows it
    repays them, batches stay at their longest row."""
    return 1


def training_batching(module: nn.Module, encoder: PreTrainedModel,
                      tokenizer: PreTrainedTokenizerBase, rows: RowDataset,
                      setting: str, max_length: int, declared: bool = True,
                      policy: Policy = FP32_CPU) -> tuple[Batching, Collate]:
    """How to batch these training rows (of at most `max_length` tokens) under
    `train.packing` (`auto`, `on`, `off`), and the collate function that does it; `on`
    raises when the encoder cannot pack (or its kind does not declare `packing`). The probe
    runs in the training's precision (`policy`), like every forward pass of the run."""
    multiple = pad_multiple()
    padded = Collator(tokenizer, pad_to_multiple_of=multiple if multiple > 1 else None)
    if setting == "off":
        return Batching("padded", multiple, reason="train.packing: off"), padded
    path = attention_path(encoder)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    width = BIN_WIDTH_FACTOR * max_length
    packed = PackedCollator(pad_id, width, varlen=path == VARLEN, pad_multiple=multiple,
                            hidden_size=int(encoder.config.hidden_size))
    problem = unsupported(encoder) if declared else "its kind does not declare packing"
    if problem is None and path == MASK:
        difference = packed_logits_differ(module, padded, packed, probe_rows(rows), policy)
        if difference is not None:
            problem = (f"a packed batch gave logits up to {difference:.3g} away from a padded "
                       f"one (its positions do not start at 0 in every row, or its attention "
                       f"ignores the 4D mask)")
    if problem is not None:
        if setting == "on":
            raise RecipeError(f"train.packing: on, but this encoder cannot pack rows: "
                              f"{problem}; set train.packing: auto (padded batches when "
                              f"packing is not supported) or off")
        return Batching("padded", multiple,
                        reason=f"train.packing: auto, and {problem}"), padded
    implementation = encoder.config._attn_implementation
    attention = (f"varlen ({implementation})" if path == VARLEN
                 else f"block-diagonal mask ({implementation}, bins of up to {width} "
                      f"tokens)")
    checked = ("" if path == VARLEN
               else "; a probe batch gave the same logits packed as padded")
    return Batching("packed", multiple, attention=attention,
                    reason=f"train.packing: {setting}, and the encoder supports it{checked}",
                    group_by_length=path != VARLEN), packed
