"""Prints how many keys the last query of a 6-token prompt may attend to
under sliding_window 3: in our reference (the current Hugging Face
definition, i - window < j <= i) and in the installed transformers' eager
mask (4.40: i - window <= j <= i, one key more)."""

import sys

import torch

sys.path.insert(0, sys.argv[1])
from transformers.modeling_attn_mask_utils import (  # noqa: E402
    _prepare_4d_causal_attention_mask)

S, W = 6, 3
hf = _prepare_4d_causal_attention_mask(None, (1, S), torch.zeros(1, S, 8), 0,
                                       sliding_window=W)
print("transformers: %d keys" % int((hf[0, 0, -1] == 0).sum()))
masked = torch.ones(S, S, dtype=torch.bool).triu(1)
masked |= torch.ones(S, S, dtype=torch.bool).tril(-W)
print("reference: %d keys" % int((~masked[-1]).sum()))
