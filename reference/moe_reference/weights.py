"""Tensor names and shapes of the four architectures (Hugging Face names),
validation of a loaded weights dict, and deterministic random weights.

NumPy only (no torch), so the weight generator starts fast.
"""

import numpy as np

from .config import MIXTRAL, QWEN2_MOE, SCMOE, SWITCH

__all__ = ["WeightsError", "expected_shapes", "moe_prefix", "check_weights",
           "random_weights", "random_ids", "LM_HEAD"]

LM_HEAD = "lm_head.weight"


class WeightsError(ValueError):
    """Missing, unexpected or wrongly shaped tensors; the message names one."""


def moe_prefix(cfg, layer):
    """Name prefix of layer ``layer``'s MoE block (ends with '.')."""
    sub = "block_sparse_moe" if cfg.architecture == MIXTRAL else "mlp"
    return "model.layers.%d.%s." % (layer, sub)


def moe_shapes(cfg, layer=1):
    """{relative name: shape} of layer ``layer``'s MoE block (ScMoE: its MLP
    block, dense in even layers), in generation order."""
    H, m = cfg.hidden_size, cfg.moe
    E, F = m.num_experts, m.intermediate_size
    out = {}
    if cfg.architecture == SCMOE:
        Fd = m.shared_intermediate_size
        if layer % 2 == 0:
            out["gate_proj.weight"] = (Fd, H)
            out["up_proj.weight"] = (Fd, H)
            out["down_proj.weight"] = (H, Fd)
            return out
        out["gate.weight"] = (E, H)
        for e in range(E):
            out["experts.%d.gate_proj.weight" % e] = (F, H)
            out["experts.%d.up_proj.weight" % e] = (F, H)
            out["experts.%d.down_proj.weight" % e] = (H, F)
        out["shared_expert.gate_proj.weight"] = (Fd, H)
        out["shared_expert.up_proj.weight"] = (Fd, H)
        out["shared_expert.down_proj.weight"] = (H, Fd)
        return out
    if cfg.architecture == MIXTRAL:
        out["gate.weight"] = (E, H)
        for e in range(E):
            out["experts.%d.w1.weight" % e] = (F, H)
            out["experts.%d.w2.weight" % e] = (H, F)
            out["experts.%d.w3.weight" % e] = (F, H)
    elif cfg.architecture == QWEN2_MOE:
        out["gate.weight"] = (E, H)
        for e in range(E):
            out["experts.%d.gate_proj.weight" % e] = (F, H)
            out["experts.%d.up_proj.weight" % e] = (F, H)
            out["experts.%d.down_proj.weight" % e] = (H, F)
        Fs = m.shared_intermediate_size
        out["shared_expert.gate_proj.weight"] = (Fs, H)
        out["shared_expert.up_proj.weight"] = (Fs, H)
        out["shared_expert.down_proj.weight"] = (H, Fs)
        out["shared_expert_gate.weight"] = (1, H)
    elif cfg.architecture == SWITCH:
        out["router.weight"] = (E, H)
        for e in range(E):
            out["experts.%d.wi.weight" % e] = (F, H)
            out["experts.%d.wo.weight" % e] = (H, F)
    else:  # pragma: no cover - config.py rejects it
        raise WeightsError("unknown architecture %s" % cfg.architecture)
    return out


def expected_shapes(cfg, with_lm_head=False):
    """{full HF name: shape} of every tensor, in generation order."""
    H, V = cfg.hidden_size, cfg.vocab_size
    out = {"model.embed_tokens.weight": (V, H)}
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        out[p + "input_layernorm.weight"] = (H,)
        out[p + "self_attn.q_proj.weight"] = (cfg.q_size, H)
        out[p + "self_attn.k_proj.weight"] = (cfg.kv_size, H)
        out[p + "self_attn.v_proj.weight"] = (cfg.kv_size, H)
        if cfg.attention_bias:
            out[p + "self_attn.q_proj.bias"] = (cfg.q_size,)
            out[p + "self_attn.k_proj.bias"] = (cfg.kv_size,)
            out[p + "self_attn.v_proj.bias"] = (cfg.kv_size,)
        out[p + "self_attn.o_proj.weight"] = (H, cfg.q_size)
        out[p + "post_attention_layernorm.weight"] = (H,)
        mp = moe_prefix(cfg, i)
        for name, shape in moe_shapes(cfg, i).items():
            out[mp + name] = shape
    out["model.norm.weight"] = (H,)
    if with_lm_head:
        out[LM_HEAD] = (V, H)
    return out


def check_weights(cfg, tensors, source="weights"):
    """Raise WeightsError unless ``tensors`` holds exactly the expected names
    (``lm_head.weight`` optional) with the expected shapes and float data."""
    want = expected_shapes(cfg, with_lm_head=LM_HEAD in tensors)
    for name, shape in want.items():
        if name not in tensors:
            raise WeightsError("%s: missing tensor '%s' (shape %s) for %s"
                               % (source, name, list(shape), cfg.architecture))
        a = tensors[name]
        if tuple(a.shape) != shape:
            raise WeightsError("%s: tensor '%s' has shape %s, expected %s"
                               % (source, name, list(a.shape), list(shape)))
        if a.dtype.kind != "f":
            raise WeightsError("%s: tensor '%s' has integer dtype %s, "
                               "expected floating point"
                               % (source, name, a.dtype))
    extra = sorted(set(tensors) - set(want))
    if extra:
        raise WeightsError("%s: unexpected tensor '%s' for %s%s"
                           % (source, extra[0], cfg.architecture,
                              " (and %d more)" % (len(extra) - 1)
                              if len(extra) > 1 else ""))


def _std(cfg, name, shape):
    """Standard deviation of a random tensor (see README, "Random weights")."""
    if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
        return None  # norm weights: 1 + N(0, 0.1)
    if name == "model.embed_tokens.weight":
        return 1.0
    if name.endswith(".bias"):
        return 0.1
    # Every matrix [out, in]: N(0, 1/sqrt(in)).  Activations stay O(1) through
    # each projection; router logits have std ~1 so softmax routing is spread
    # over the experts but not flat; expert and attention outputs are O(1), so
    # each layer changes the residual stream by O(1), not by 1e-3.
    return 1.0 / np.sqrt(shape[-1])


def random_weights(cfg, seed, with_lm_head=False):
    """Deterministic float32 weights: one numpy Generator(PCG64(seed)) draws
    every tensor in ``expected_shapes`` order (lm_head last, so adding it
    leaves all other tensors unchanged)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    out = {}
    for name, shape in expected_shapes(cfg, with_lm_head).items():
        std = _std(cfg, name, shape)
        if std is None:
            a = 1.0 + 0.1 * rng.standard_normal(shape)
        else:
            a = std * rng.standard_normal(shape)
        out[name] = a.astype(np.float32)
    return out


def random_ids(vocab_size, batch, seq, seed):
    """int64 token ids [batch, seq], uniform in [0, vocab_size), from
    Generator(PCG64(seed))."""
    rng = np.random.Generator(np.random.PCG64(seed))
    return rng.integers(0, vocab_size, size=(batch, seq), dtype=np.int64)
