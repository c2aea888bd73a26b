"""Plain PyTorch (float32) prefill forward of the three MoE architectures.

    x = embed_tokens[ids]                                  # [B, S, H]
    for each layer:
        x = x + attn(rmsnorm(x, input_layernorm))
        x = x + moe(rmsnorm(x, post_attention_layernorm))  # tokens flattened to [B*S, H]
    h = rmsnorm(x, norm)                                   # returned hidden states
    logits = h @ lm_head.T                                 # optional

The MoE routing rules (stable top-k, capacity and drop order) are those of
docs/Routing.md; the expert compute is the per-expert loop of Hugging Face's
MixtralSparseMoeBlock (select the expert's tokens, run its FFN, index_add the
weighted result).
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import MIXTRAL, QWEN2_MOE, SCMOE, SWITCH, expert_capacity
from .weights import LM_HEAD, check_weights, moe_prefix

__all__ = ["rms_norm", "rope_cos_sin", "rotate_half", "apply_rope",
           "attention", "route", "capacity_slots", "moe_block",
           "layer_moe_weights", "MoEModel", "set_threads", "generate"]


def set_threads(n):
    """Pin torch's intra-op thread count (None/0: leave torch's default)."""
    if n:
        torch.set_num_threads(int(n))


def _t(a):
    if isinstance(a, torch.Tensor):
        return a.to(torch.float32)
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


# --------------------------------------------------------------------------
# Norm, RoPE, attention
# --------------------------------------------------------------------------

def rms_norm(x, w, eps):
    """x * rsqrt(mean(x^2, -1) + eps) * w (Hugging Face's RMSNorm, in f32)."""
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rope_cos_sin(seq_len, head_dim, theta):
    """cos, sin : [seq_len, head_dim] for positions 0..seq_len-1.

    inv_freq = 1 / theta^(arange(0, d, 2) / d) in f32; angles pos*inv_freq,
    the d/2 frequencies concatenated twice (Hugging Face convention)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2,
                                             dtype=torch.int64).float()
                                / head_dim))
    pos = torch.arange(seq_len, dtype=torch.int64).float()
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    """[x1, x2] -> [-x2, x1] on the last dim (halves, not interleaved)."""
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def apply_rope(x, cos, sin):
    """x : [B, heads, S, d]; cos/sin : [S, d]."""
    return x * cos + rotate_half(x) * sin


def attention(cfg, x, w, cos, sin, window=None):
    """Causal GQA self-attention of x : [B, S, H]; with ``window``, query i
    attends to keys i - window < j <= i only (sliding-window attention).

    ``w`` maps 'q_proj.weight', 'k_proj.weight', 'v_proj.weight',
    'o_proj.weight' (and 'q_proj.bias', 'k_proj.bias', 'v_proj.bias' when the
    architecture has them) to tensors.  KV head g serves query heads
    g*r .. g*r+r-1 with r = num_attention_heads / num_key_value_heads
    (Hugging Face's repeat_kv)."""
    B, S, _ = x.shape
    nh, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    q = F.linear(x, w["q_proj.weight"], w.get("q_proj.bias"))
    k = F.linear(x, w["k_proj.weight"], w.get("k_proj.bias"))
    v = F.linear(x, w["v_proj.weight"], w.get("v_proj.bias"))
    q = q.view(B, S, nh, d).transpose(1, 2)
    k = k.view(B, S, nkv, d).transpose(1, 2)
    v = v.view(B, S, nkv, d).transpose(1, 2)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    rep = nh // nkv
    if rep > 1:
        k = k[:, :, None].expand(B, nkv, rep, S, d).reshape(B, nh, S, d)
        v = v[:, :, None].expand(B, nkv, rep, S, d).reshape(B, nh, S, d)
    scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(d)
    causal = torch.ones(S, S, dtype=torch.bool).triu(1)
    if window is not None:
        causal |= torch.ones(S, S, dtype=torch.bool).tril(-window)
    scores = scores.masked_fill(causal, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    out = torch.matmul(probs, v).transpose(1, 2).reshape(B, S, nh * d)
    return F.linear(out, w["o_proj.weight"])


# --------------------------------------------------------------------------
# Routing and capacity (docs/Routing.md)
# --------------------------------------------------------------------------

def route(logits, k, score="softmax", renormalize=False):
    """Top-k routing of router logits [T, E] -> (weights [T, k] f32,
    ids [T, k] int64).

    scores = softmax(logits) (or sigmoid); ids = the k largest scores, largest
    first, equal scores ordered by LOWER expert id (a stable ascending sort of
    -score, not torch.topk, whose tie order is unspecified); weights = scores
    at ids, divided by their sum when ``renormalize``."""
    if score == "softmax":
        scores = torch.softmax(logits, dim=-1, dtype=torch.float32)
    elif score == "sigmoid":
        scores = torch.sigmoid(logits.float())
    else:
        raise ValueError("unknown score function %r" % (score,))
    ids = torch.sort(-scores, dim=-1, stable=True).indices[:, :k]
    weights = scores.gather(1, ids)
    if renormalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, ids


def capacity_slots(ids, num_experts, capacity):
    """Slot of each (token, choice) pair in its expert's buffer, or -1.

    Pairs are placed choice-rank-major, then in token order (all first
    choices of all tokens before any second choice); an expert accepts at
    most ``capacity`` pairs; the rest (and ids outside [0, E)) get -1.
    Returns (slots [T, k] int64, counts [E] int64 = filled slots)."""
    T, k = ids.shape
    flat = ids.t().reshape(-1)                       # pair p = j * T + t
    valid = (flat >= 0) & (flat < num_experts)
    key = torch.where(valid, flat, torch.full_like(flat, num_experts))
    _, perm = torch.sort(key, stable=True)           # grouped by expert, order kept
    counts = torch.bincount(key, minlength=num_experts + 1)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(flat)
    rank[perm] = torch.arange(flat.numel()) - starts[key[perm]]
    slot = torch.where(valid & (rank < capacity), rank,
                       torch.full_like(rank, -1))
    filled = torch.clamp(counts[:num_experts], max=capacity)
    return slot.view(k, T).t().contiguous(), filled


def _swiglu(x, gate_w, up_w, down_w):
    return F.linear(F.silu(F.linear(x, gate_w)) * F.linear(x, up_w), down_w)


def _relu_ffn(x, wi, wo):
    return F.linear(F.relu(F.linear(x, wi)), wo)


def layer_moe_weights(cfg, tensors, layer):
    """The MoE weights of layer ``layer`` keyed by names relative to the MoE
    module (e.g. 'gate.weight', 'experts.3.w1.weight')."""
    p = moe_prefix(cfg, layer)
    return {n[len(p):]: v for n, v in tensors.items() if n.startswith(p)}


def moe_block(cfg, x, w, return_routing=False):
    """The MoE block alone: x [T, H] -> [T, H] (float32).

    ``cfg`` is a ModelConfig; ``w`` maps names relative to the MoE module
    (see ``layer_moe_weights``) to torch tensors or numpy arrays.  With
    ``return_routing`` also returns (weights, ids, slots) (slots is None when
    dropless)."""
    m = cfg.moe
    x = _t(x)
    w = {n: _t(v) for n, v in w.items()}
    T, H = x.shape
    E, k = m.num_experts, m.top_k
    router = w["router.weight" if cfg.architecture == SWITCH else "gate.weight"]
    logits = F.linear(x, router)                                  # [T, E]
    weights, ids = route(logits, k, m.score, m.renormalize)

    # Hugging Face MixtralSparseMoeBlock: expert_mask[e, j, t] = ids[t, j] == e
    expert_mask = F.one_hot(ids, num_classes=E).permute(2, 1, 0)  # [E, k, T]
    slots = None
    if m.capacity_factor is not None:
        C = expert_capacity(m.capacity_factor, T, k, E)
        slots, _ = capacity_slots(ids, E, C)
        expert_mask = expert_mask * (slots >= 0).t().to(expert_mask.dtype)
    final = torch.zeros(T, H, dtype=torch.float32)
    for e in range(E):
        idx, top_x = torch.where(expert_mask[e])
        if top_x.numel() == 0:
            continue
        cur = x[top_x]
        p = "experts.%d." % e
        if cfg.architecture == MIXTRAL:
            y = _swiglu(cur, w[p + "w1.weight"], w[p + "w3.weight"],
                        w[p + "w2.weight"])
        elif cfg.architecture in (QWEN2_MOE, SCMOE):
            y = _swiglu(cur, w[p + "gate_proj.weight"], w[p + "up_proj.weight"],
                        w[p + "down_proj.weight"])
        else:
            y = _relu_ffn(cur, w[p + "wi.weight"], w[p + "wo.weight"])
        final.index_add_(0, top_x, y * weights[top_x, idx, None])

    if cfg.architecture == QWEN2_MOE:
        shared = _swiglu(x, w["shared_expert.gate_proj.weight"],
                         w["shared_expert.up_proj.weight"],
                         w["shared_expert.down_proj.weight"])
        shared = torch.sigmoid(F.linear(x, w["shared_expert_gate.weight"])) \
            * shared
        final = final + shared
    if return_routing:
        return final, (weights, ids, slots)
    return final


# --------------------------------------------------------------------------
# Whole model
# --------------------------------------------------------------------------

def feed_forward(cfg, layer, w, x, h, shortcut):
    """The second half of decoder layer ``layer``: x (after attention) plus
    its MLP block on h = post_attention_layernorm(x), [..., H] each.
    Returns (x, shortcut): ScMoE's even layer passes its MLP input h on as
    the shortcut the next layer's routed experts read:

        x1 = a + MLP_l(u)                      (l even, u = h)
        x2 = b + Shared_l+1(h) + MoE_l+1(u)    (l + 1 odd)
    """
    H = cfg.hidden_size
    if cfg.architecture != SCMOE:
        moe = moe_block(cfg, h.reshape(-1, H), w).view(h.shape)
        return x + moe, None
    if layer % 2 == 0:
        mlp = _swiglu(h, w["gate_proj.weight"], w["up_proj.weight"],
                      w["down_proj.weight"])
        return x + mlp, h
    shared = _swiglu(h, w["shared_expert.gate_proj.weight"],
                     w["shared_expert.up_proj.weight"],
                     w["shared_expert.down_proj.weight"])
    routed = moe_block(cfg, shortcut.reshape(-1, H), w).view(h.shape)
    return x + shared + routed, None


class MoEModel:
    """The decoder stack.  ``tensors`` is a {HF name: array} dict (as returned
    by safetensors_np.load); it is validated against ``cfg`` first."""

    def __init__(self, cfg, tensors, source="weights"):
        check_weights(cfg, tensors, source)
        self.cfg = cfg
        t = {n: _t(v) for n, v in tensors.items()}
        self.embed = t["model.embed_tokens.weight"]
        self.norm = t["model.norm.weight"]
        self.lm_head = t.get(LM_HEAD)
        if self.lm_head is None and cfg.tie_word_embeddings:
            self.lm_head = self.embed
        self.layers = []
        for i in range(cfg.num_hidden_layers):
            p = "model.layers.%d." % i
            attn = {n[len(p + "self_attn."):]: v for n, v in t.items()
                    if n.startswith(p + "self_attn.")}
            self.layers.append({
                "input_layernorm": t[p + "input_layernorm.weight"],
                "post_attention_layernorm":
                    t[p + "post_attention_layernorm.weight"],
                "attn": attn,
                "moe": layer_moe_weights(cfg, t, i),
            })

    @torch.no_grad()
    def forward(self, ids, return_logits=False):
        """ids : int [B, S] -> hidden states [B, S, H] (or logits [B, S, V])."""
        cfg = self.cfg
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
        if ids.dim() != 2:
            raise ValueError("input ids must have shape [batch, seq], got %s"
                             % list(ids.shape))
        B, S = ids.shape
        if ids.numel() and (int(ids.min()) < 0
                            or int(ids.max()) >= cfg.vocab_size):
            raise ValueError("input ids must lie in [0, %d), found %d..%d"
                             % (cfg.vocab_size, int(ids.min()),
                                int(ids.max())))
        if return_logits and self.lm_head is None:
            raise ValueError("logits requested but the weights have no "
                             "lm_head.weight (and tie_word_embeddings is "
                             "false)")
        H = cfg.hidden_size
        x = self.embed[ids]
        cos, sin = rope_cos_sin(S, cfg.head_dim, cfg.rope_theta)
        shortcut = None
        for i, L in enumerate(self.layers):
            h = rms_norm(x, L["input_layernorm"], cfg.rms_norm_eps)
            x = x + attention(cfg, h, L["attn"], cos, sin, cfg.window(i))
            h = rms_norm(x, L["post_attention_layernorm"], cfg.rms_norm_eps)
            x, shortcut = feed_forward(cfg, i, L["moe"], x, h, shortcut)
        x = rms_norm(x, self.norm, cfg.rms_norm_eps)
        if return_logits:
            return F.linear(x, self.lm_head)
        return x


# --------------------------------------------------------------------------
# Greedy generation with a key/value cache (docs/Generation.md)
# --------------------------------------------------------------------------

def _step_attention(cfg, x, w, cache_k, cache_v, pos, window=None):
    """One token per sequence, x : [B, H] at positions pos : [B]; appends its
    keys and values to cache_k/cache_v [B, nkv, M, d] at pos and attends to
    positions 0..pos of its own sequence."""
    B, _ = x.shape
    nh, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    M = cache_k.shape[2]
    q = F.linear(x, w["q_proj.weight"], w.get("q_proj.bias")).view(B, nh, 1, d)
    k = F.linear(x, w["k_proj.weight"], w.get("k_proj.bias")).view(B, nkv, 1, d)
    v = F.linear(x, w["v_proj.weight"], w.get("v_proj.bias")).view(B, nkv, 1, d)
    cos, sin = rope_cos_sin(M, d, cfg.rope_theta)
    cos, sin = cos[pos][:, None, None, :], sin[pos][:, None, None, :]
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    rows = torch.arange(B)
    cache_k[rows, :, pos] = k[:, :, 0]
    cache_v[rows, :, pos] = v[:, :, 0]
    rep = nh // nkv
    keys = cache_k.repeat_interleave(rep, dim=1)           # [B, nh, M, d]
    values = cache_v.repeat_interleave(rep, dim=1)
    scores = torch.matmul(q, keys.transpose(2, 3)) / math.sqrt(d)
    future = torch.arange(M)[None, :] > pos[:, None]        # [B, M]
    if window is not None:
        future |= torch.arange(M)[None, :] <= pos[:, None] - window
    scores = scores.masked_fill(future[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    out = torch.matmul(probs, values).reshape(B, nh * d)
    return F.linear(out, w["o_proj.weight"])


def _prefill_kv(cfg, x, w, cos, sin):
    """The keys and values [B, nkv, S, d] (after RoPE) of a prompt's layer."""
    B, S, _ = x.shape
    nkv, d = cfg.num_key_value_heads, cfg.head_dim
    k = F.linear(x, w["k_proj.weight"], w.get("k_proj.bias"))
    v = F.linear(x, w["v_proj.weight"], w.get("v_proj.bias"))
    k = apply_rope(k.view(B, S, nkv, d).transpose(1, 2), cos, sin)
    return k, v.view(B, S, nkv, d).transpose(1, 2)


def _generate_batch(model, ids, lengths, n, eos):
    """Greedy generation of the right-padded prompts ids [B, S] (row b's
    prompt is ids[b, :lengths[b]]): prefill over all [B, S] (padding as
    token 0), then n - 1 steps of one token per sequence at its own position.
    The MoE routes the step's tokens (a capacity counts them)."""
    cfg = model.cfg
    B, S = ids.shape
    M = S + n
    H, nkv, d = cfg.hidden_size, cfg.num_key_value_heads, cfg.head_dim
    lengths = torch.as_tensor(lengths, dtype=torch.int64)
    ids = ids.clone()
    for b in range(B):
        ids[b, lengths[b]:] = 0
    x = model.embed[ids]
    cos, sin = rope_cos_sin(S, d, cfg.rope_theta)
    caches = []
    shortcut = None
    for i, L in enumerate(model.layers):
        h = rms_norm(x, L["input_layernorm"], cfg.rms_norm_eps)
        k, v = _prefill_kv(cfg, h, L["attn"], cos, sin)
        ck = torch.zeros(B, nkv, M, d)
        cv = torch.zeros(B, nkv, M, d)
        ck[:, :, :S], cv[:, :, :S] = k, v
        caches.append((ck, cv))
        x = x + attention(cfg, h, L["attn"], cos, sin, cfg.window(i))
        h = rms_norm(x, L["post_attention_layernorm"], cfg.rms_norm_eps)
        x, shortcut = feed_forward(cfg, i, L["moe"], x, h, shortcut)
    x = rms_norm(x, model.norm, cfg.rms_norm_eps)
    last = x[torch.arange(B), lengths - 1]                  # [B, H]
    out = torch.full((B, S + n), -1, dtype=torch.int64)
    for b in range(B):
        out[b, :lengths[b]] = ids[b, :lengths[b]]
    logits_all = torch.full((B, n, cfg.vocab_size), float("nan"))
    ended = torch.zeros(B, dtype=torch.bool)
    for t in range(n):
        if t > 0:
            if eos is not None and bool(ended.all()):
                break
            pos = lengths + t - 1
            x = model.embed[nxt]
            shortcut = None
            for i, (L, (ck, cv)) in enumerate(zip(model.layers, caches)):
                h = rms_norm(x, L["input_layernorm"], cfg.rms_norm_eps)
                x = x + _step_attention(cfg, h, L["attn"], ck, cv, pos,
                                        cfg.window(i))
                h = rms_norm(x, L["post_attention_layernorm"],
                             cfg.rms_norm_eps)
                x, shortcut = feed_forward(cfg, i, L["moe"], x, h, shortcut)
            last = rms_norm(x, model.norm, cfg.rms_norm_eps)
        logits = F.linear(last, model.lm_head)              # [B, V]
        logits_all[:, t] = logits
        nxt = torch.argmax(logits, dim=-1)                  # first max on ties
        if eos is not None:
            nxt = torch.where(ended, torch.full_like(nxt, eos), nxt)
            ended |= nxt == eos
        out[torch.arange(B), lengths + t] = nxt
    if eos is not None:
        for b in range(B):
            gen = out[b, lengths[b]:lengths[b] + n]
            hits = (gen == eos).nonzero()
            if hits.numel():
                gen[int(hits[0]):] = eos
    return out, logits_all


@torch.no_grad()
def generate(model, ids, lengths=None, n=1, eos=None, alone=False):
    """Greedy generation (argmax; the lowest id on a tie) of ``n`` tokens
    after each prompt: returns (ids [B, S + n] int64: prompt, tokens, -1
    padding; logits [B, n, V] float32, NaN after every row ended).  With
    ``alone``, each prompt is generated by itself (a batch of one)."""
    ids = torch.as_tensor(np.asarray(ids), dtype=torch.int64)
    B, S = ids.shape
    if lengths is None:
        lengths = [S] * B
    if model.lm_head is None:
        raise ValueError("generation needs lm_head.weight (or "
                         "tie_word_embeddings)")
    if not alone:
        out, logits = _generate_batch(model, ids, lengths, n, eos)
        return out.numpy(), logits.numpy()
    out = np.full((B, S + n), -1, dtype=np.int64)
    logits = np.full((B, n, model.cfg.vocab_size), np.nan, dtype=np.float32)
    for b in range(B):
        length = int(lengths[b])
        o, lg = _generate_batch(model, ids[b:b + 1, :length], [length], n, eos)
        out[b, :length + n] = o[0].numpy()
        logits[b] = lg[0].numpy()
    return out, logits
