"""Pooling token states into one vector per row, for padded and for packed batches.

Padded: hidden states (rows, longest, hidden) with an attention mask. Packed
(`data/packing.py`): hidden states (sequences, width, hidden) in which each token belongs to
the row `sequence_ids` names (-1 for padding); a row's CLS is its first token, at
`row_starts` in the flattened batch. `last` pools each row's last real token, as decoder-only
(causal) models classify (Hugging Face's `*ForSequenceClassification` does the same given a
pad token): the only position that has seen the whole row. Both return rows in batch order,
so the head, the loss and the labels see the same rows whichever layout the batch had.
"""

from __future__ import annotations

import torch


def pool_padded(hidden: torch.Tensor, attention_mask: torch.Tensor | None,
                pooling: str) -> torch.Tensor:
    """Mean over each row's unmasked tokens (all of them without a mask), its last real
    token (`last`: wherever padding sits, left or right), or its first token (CLS)."""
    if pooling == "last":
        if attention_mask is None:
            return hidden[:, -1]
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        last = (attention_mask.to(positions.dtype) * positions).argmax(-1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    if pooling != "mean":
        return hidden[:, 0]
    if attention_mask is None:
        return hidden.mean(1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


def pool_packed(hidden: torch.Tensor, sequence_ids: torch.Tensor, row_starts: torch.Tensor,
                row_lengths: torch.Tensor, pooling: str) -> torch.Tensor:
    """Mean over each row's own tokens, its last token, or its first token (CLS), rows in
    batch order."""
    flat = hidden.reshape(-1, hidden.shape[-1])
    if pooling == "last":
        return flat[row_starts + row_lengths - 1]
    if pooling != "mean":
        return flat[row_starts]
    rows = row_lengths.shape[0]
    # Padding sums into one extra slot that is dropped: no boolean indexing, which would
    # make the host wait for the device to count the real tokens.
    slots = sequence_ids.reshape(-1)
    slots = torch.where(slots >= 0, slots, rows)
    sums = flat.new_zeros(rows + 1, flat.shape[-1]).index_add_(0, slots, flat)[:rows]
    return sums / row_lengths.unsqueeze(-1).to(flat.dtype)
