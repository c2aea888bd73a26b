#!/usr/bin/env -S /usr/bin/python3
"""An independent float64 NumPy implementation of the three architectures,
written with explicit loops, to cross-check moe_reference.models.

It shares nothing with models.py but the config parser and the safetensors
reader: RoPE rotates (i, i + d/2) pairs by explicit angles, attention loops
over batch, head and query position, routing sorts with Python's sorted() on
(-score, expert id), capacity is the double loop of docs/Routing.md, and each
expert runs on one token vector at a time.

CLI:  numpy_model.py --config C --weights W --input ids.npy -o out.npy
writes the float64 hidden states (as float64 .npy) for compare.py.
"""

import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from moe_reference.config import MIXTRAL, QWEN2_MOE, SCMOE, SWITCH  # noqa: E402


def rmsnorm(x, w, eps):
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape[:-1]):
        v = x[idx]
        out[idx] = w * (v / math.sqrt(float(np.dot(v, v)) / v.size + eps))
    return out


def rope_vec(v, pos, theta):
    """Rotate the pairs (v[i], v[i + d/2]) of one head vector by pos*f_i,
    f_i = theta^(-2i/d)."""
    d = v.size
    half = d // 2
    out = np.empty_like(v)
    for i in range(half):
        ang = pos * theta ** (-(2.0 * i) / d)
        c, s = math.cos(ang), math.sin(ang)
        out[i] = v[i] * c - v[i + half] * s
        out[i + half] = v[i + half] * c + v[i] * s
    return out


def attention(cfg, x, w, window=None):
    """x [B, S, H] float64; w: q_proj.weight ... (names relative to
    self_attn); with ``window``, query i sees keys i - window < j <= i."""
    B, S, _ = x.shape
    nh, nkv, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
    rep = nh // nkv

    def proj(name):
        y = x @ w[name + ".weight"].T
        if name + ".bias" in w:
            y = y + w[name + ".bias"]
        return y

    q, k, v = proj("q_proj"), proj("k_proj"), proj("v_proj")
    out = np.zeros((B, S, nh * d))
    for b in range(B):
        for h in range(nh):
            g = h // rep
            qs = [rope_vec(q[b, i, h * d:(h + 1) * d], i, cfg.rope_theta)
                  for i in range(S)]
            ks = [rope_vec(k[b, j, g * d:(g + 1) * d], j, cfg.rope_theta)
                  for j in range(S)]
            for i in range(S):
                first = 0 if window is None else max(0, i - window + 1)
                sc = [float(np.dot(qs[i], ks[j])) / math.sqrt(d)
                      for j in range(first, i + 1)]
                m = max(sc)
                p = [math.exp(s - m) for s in sc]
                z = sum(p)
                acc = np.zeros(d)
                for j in range(first, i + 1):
                    acc += (p[j - first] / z) * v[b, j, g * d:(g + 1) * d]
                out[b, i, h * d:(h + 1) * d] = acc
    return out @ w["o_proj.weight"].T


def silu(z):
    return z / (1.0 + np.exp(-z))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def naive_route(x, router, k, renormalize):
    """-> weights [T][k], ids [T][k] (lists); softmax, sorted by (-p, id)."""
    W, I = [], []
    for t in range(x.shape[0]):
        logits = router @ x[t]
        e = np.exp(logits - logits.max())
        p = e / e.sum()
        ids = sorted(range(len(p)), key=lambda i: (-p[i], i))[:k]
        ws = [float(p[i]) for i in ids]
        if renormalize:
            s = sum(ws)
            ws = [a / s for a in ws]
        W.append(ws)
        I.append(ids)
    return W, I


def naive_slots(ids, E, C):
    """docs/Routing.md: choice rank major, then token order; -1 = dropped."""
    T, k = len(ids), len(ids[0])
    slots = [[-1] * k for _ in range(T)]
    fill = [0] * E
    for j in range(k):
        for t in range(T):
            e = ids[t][j]
            if 0 <= e < E and fill[e] < C:
                slots[t][j] = fill[e]
                fill[e] += 1
    return slots, fill


def moe(cfg, x, w):
    """x [T, H] float64; w: names relative to the MoE module."""
    m = cfg.moe
    T = x.shape[0]
    E, k = m.num_experts, m.top_k
    router = w["router.weight" if cfg.architecture == SWITCH else "gate.weight"]
    W, I = naive_route(x, router, k, m.renormalize)
    if m.capacity_factor is not None:
        C = int(math.ceil(m.capacity_factor * T * k / E))
        slots, _ = naive_slots(I, E, C)
    else:
        slots = [[0] * k for _ in range(T)]
    y = np.zeros_like(x)
    for t in range(T):
        for j in range(k):
            if slots[t][j] < 0:
                continue
            e = I[t][j]
            p = "experts.%d." % e
            v = x[t]
            if cfg.architecture == MIXTRAL:
                f = w[p + "w2.weight"] @ (silu(w[p + "w1.weight"] @ v)
                                          * (w[p + "w3.weight"] @ v))
            elif cfg.architecture in (QWEN2_MOE, SCMOE):
                f = w[p + "down_proj.weight"] @ (
                    silu(w[p + "gate_proj.weight"] @ v)
                    * (w[p + "up_proj.weight"] @ v))
            else:
                f = w[p + "wo.weight"] @ np.maximum(w[p + "wi.weight"] @ v, 0.0)
            y[t] += W[t][j] * f
        if cfg.architecture == QWEN2_MOE:
            v = x[t]
            s = w["shared_expert.down_proj.weight"] @ (
                silu(w["shared_expert.gate_proj.weight"] @ v)
                * (w["shared_expert.up_proj.weight"] @ v))
            g = sigmoid(float(w["shared_expert_gate.weight"][0] @ v))
            y[t] += g * s
    return y


def forward(cfg, tensors, ids, logits=False):
    t = {n: np.asarray(a, dtype=np.float64) for n, a in tensors.items()}
    B, S = ids.shape
    H = cfg.hidden_size
    x = t["model.embed_tokens.weight"][ids]
    u = None  # ScMoE: the even layer's MLP input, routed in the odd layer
    for i in range(cfg.num_hidden_layers):
        p = "model.layers.%d." % i
        mp = p + ("block_sparse_moe." if cfg.architecture == MIXTRAL
                  else "mlp.")
        attn_w = {n[len(p) + 10:]: a for n, a in t.items()
                  if n.startswith(p + "self_attn.")}
        moe_w = {n[len(mp):]: a for n, a in t.items() if n.startswith(mp)}
        h = rmsnorm(x, t[p + "input_layernorm.weight"], cfg.rms_norm_eps)
        x = x + attention(cfg, h, attn_w, cfg.window(i))
        h = rmsnorm(x, t[p + "post_attention_layernorm.weight"],
                    cfg.rms_norm_eps)
        if cfg.architecture != SCMOE:
            x = x + moe(cfg, h.reshape(B * S, H), moe_w).reshape(B, S, H)
            continue

        def swiglu(v, q):
            return (silu(v @ moe_w[q + "gate_proj.weight"].T)
                    * (v @ moe_w[q + "up_proj.weight"].T)) \
                @ moe_w[q + "down_proj.weight"].T
        if i % 2 == 0:
            u = h
            x = x + swiglu(h, "")
        else:
            x = x + swiglu(h, "shared_expert.") \
                + moe(cfg, u.reshape(B * S, H), moe_w).reshape(B, S, H)
    x = rmsnorm(x, t["model.norm.weight"], cfg.rms_norm_eps)
    if logits:
        head = t.get("lm_head.weight")
        if head is None:
            head = t["model.embed_tokens.weight"]
        return x @ head.T
    return x


def main():
    import argparse
    from moe_reference import safetensors_np
    from moe_reference.config import load_config
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--logits", action="store_true")
    a = ap.parse_args()
    cfg = load_config(a.config)
    ids = np.load(a.input, allow_pickle=False).astype(np.int64)
    out = forward(cfg, safetensors_np.load(a.weights), ids, a.logits)
    np.save(a.output, out, allow_pickle=False)


if __name__ == "__main__":
    main()
