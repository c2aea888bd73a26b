#!/usr/bin/env -S /usr/bin/python3
"""Unit checks of moe_reference.models against independent implementations
(tests/numpy_model.py: float64 NumPy with explicit loops) and hand-worked
examples.

    test_model.py CHECK [CHECK ...]

CHECK is one of: attention, routing, capacity, moe-block, model.  Each
prints "PASS <name> ..." lines or raises (non-zero exit).
"""

import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

import torch  # noqa: E402

import numpy_model as ref  # noqa: E402
from moe_reference import models  # noqa: E402
from moe_reference.config import (expert_capacity, load_config,  # noqa: E402
                                  parse_config)
from moe_reference.weights import random_weights  # noqa: E402

EXAMPLES = os.path.join(os.path.dirname(ROOT), "examples")
ARCHS = ("mixtral-tiny", "qwen-moe-tiny", "switch-tiny")
TOL = 1e-5

torch.set_num_threads(1)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def cfg_of(name, **overrides):
    if not overrides:
        return load_config(os.path.join(EXAMPLES, name, "config.json"))
    import json
    with open(os.path.join(EXAMPLES, name, "config.json")) as f:
        d = json.load(f)
    d.update(overrides)
    return parse_config(d)


# --------------------------------------------------------------------------

def check_attention():
    cases = [
        ("mixtral GQA 4q/2kv", cfg_of("mixtral-tiny")),
        ("qwen biases", cfg_of("qwen-moe-tiny")),
        ("switch MHA", cfg_of("switch-tiny")),
        ("head_dim 32 != H/nh, MQA", cfg_of("mixtral-tiny", head_dim=32,
                                            num_key_value_heads=1,
                                            rope_theta=10000.0)),
        ("mixtral sliding_window 3", cfg_of("mixtral-tiny",
                                            sliding_window=3)),
    ]
    rng = np.random.Generator(np.random.PCG64(11))
    for label, cfg in cases:
        window = cfg.window(0)
        w = random_weights(cfg, 3)
        p = "model.layers.0.self_attn."
        aw = {n[len(p):]: a for n, a in w.items() if n.startswith(p)}
        B, S = 2, 7
        x = rng.standard_normal((B, S, cfg.hidden_size)).astype(np.float32)
        cos, sin = models.rope_cos_sin(S, cfg.head_dim, cfg.rope_theta)
        got = models.attention(cfg, torch.from_numpy(x),
                               {n: torch.from_numpy(a) for n, a in aw.items()},
                               cos, sin, window).numpy()
        want = ref.attention(cfg, x.astype(np.float64),
                             {n: a.astype(np.float64) for n, a in aw.items()},
                             window)
        e = rel_err(got, want)
        check(e < TOL, "%s: attention rel err %.3e" % (label, e))
        # causality: changing the last token changes no earlier output
        x2 = x.copy()
        x2[:, -1] += 1.0
        got2 = models.attention(cfg, torch.from_numpy(x2),
                                {n: torch.from_numpy(a)
                                 for n, a in aw.items()}, cos, sin,
                                window).numpy()
        check(np.array_equal(got2[:, :-1], got[:, :-1]), "%s: not causal"
              % label)
        check(not np.array_equal(got2[:, -1], got[:, -1]), label)
        if window is not None:
            # the window: changing the first token changes only the outputs
            # of the queries it reaches (i < window)
            x3 = x.copy()
            x3[:, 0] += 1.0
            got3 = models.attention(cfg, torch.from_numpy(x3),
                                    {n: torch.from_numpy(a)
                                     for n, a in aw.items()}, cos, sin,
                                    window).numpy()
            check(np.array_equal(got3[:, window:], got[:, window:]),
                  "%s: sees past its window" % label)
            check(not np.array_equal(got3[:, window - 1], got[:, window - 1]),
                  "%s: misses its window's first key" % label)
        print("PASS attention %s (rel err %.1e)" % (label, e))

    # RoPE alone, against the explicit pairwise rotation.
    d, S, theta = 16, 9, 1.0e6
    v = rng.standard_normal((1, 1, S, d)).astype(np.float32)
    cos, sin = models.rope_cos_sin(S, d, theta)
    got = models.apply_rope(torch.from_numpy(v), cos, sin).numpy()[0, 0]
    want = np.stack([ref.rope_vec(v[0, 0, i].astype(np.float64), i, theta)
                     for i in range(S)])
    check(rel_err(got, want) < TOL, "rope")
    check(np.array_equal(got[0], v[0, 0, 0]), "position 0 is the identity")
    print("PASS rope (rotate-half, theta=1e6)")


def check_routing():
    def ids_of(logits, k, score="softmax", renorm=False):
        w, i = models.route(torch.tensor(logits, dtype=torch.float32), k,
                            score, renorm)
        return w.numpy(), i.numpy().tolist()

    # Ties go to the lower expert id, largest score first.
    _, i = ids_of([[1.0, 1.0, 1.0, 1.0]], 2)
    check(i == [[0, 1]], "all equal: %r" % i)
    _, i = ids_of([[0.0, 2.0, 2.0, 0.0]], 2)
    check(i == [[1, 2]], "tie on top: %r" % i)
    _, i = ids_of([[3.0, 1.0, 3.0, 3.0, 5.0]], 3)
    check(i == [[4, 0, 2]], "tie below the max: %r" % i)
    _, i = ids_of([[0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]], 8)
    check(i == [list(range(8))], "full sort of ties: %r" % i)
    print("PASS routing ties go to the lower expert id")

    # Many random rows with heavy ties vs Python's sorted(), both scores.
    rng = np.random.Generator(np.random.PCG64(5))
    for score in ("softmax", "sigmoid"):
        for E, k in ((4, 1), (8, 2), (16, 4), (5, 5)):
            logits = rng.integers(-2, 3, size=(64, E)).astype(np.float32)
            w, i = ids_of(logits, k, score)
            t = torch.tensor(logits)
            s = (torch.softmax(t, -1) if score == "softmax"
                 else torch.sigmoid(t)).numpy()
            for r in range(64):
                want = sorted(range(E), key=lambda e: (-s[r, e], e))[:k]
                check(i[r] == want, "%s E=%d k=%d row %d: %r != %r"
                      % (score, E, k, r, i[r], want))
                check(np.array_equal(w[r], s[r, want]), "weights = scores")
            wn, _ = ids_of(logits, k, score, True)
            check(np.allclose(wn.sum(-1), 1.0, atol=1e-6), "renormalized")
    print("PASS routing stable top-k == sorted by (-score, id), softmax and "
          "sigmoid")


def check_capacity():
    # docs/Routing.md worked example: T=4, E=3, k=2, C=2.
    ids = torch.tensor([[0, 1], [0, 2], [0, 1], [2, 0]])
    slots, counts = models.capacity_slots(ids, 3, 2)
    print("worked example C=2: slots %s counts %s"
          % (slots.tolist(), counts.tolist()))
    check(slots.tolist() == [[0, 0], [1, 1], [-1, 1], [0, -1]], "slots")
    check(counts.tolist() == [2, 2, 2], "counts")
    slots, counts = models.capacity_slots(ids, 3, 4)
    print("worked example C=4: slots %s counts %s"
          % (slots.tolist(), counts.tolist()))
    check(slots.tolist() == [[0, 0], [1, 1], [2, 1], [0, 3]], "dropless")
    check(counts.tolist() == [4, 2, 2], "dropless counts")

    rng = np.random.Generator(np.random.PCG64(9))
    n = 0
    for T in (1, 3, 17, 64):
        for E in (1, 3, 8):
            for k in range(1, min(E, 3) + 1):
                for C in (1, 2, 5, T):
                    rows = [list(rng.permutation(E)[:k]) for _ in range(T)]
                    if T > 2:  # one out-of-range id: dropped, not counted
                        rows[1][0] = E
                    got, cnt = models.capacity_slots(torch.tensor(rows), E, C)
                    want, fill = ref.naive_slots(rows, E, C)
                    check(got.tolist() == want, "T=%d E=%d k=%d C=%d"
                          % (T, E, k, C))
                    check(cnt.tolist() == fill, "counts")
                    n += 1
    print("PASS capacity worked example and %d random cases vs the naive "
          "loop" % n)

    for cf, T, k, E, want in ((1.25, 16, 1, 4, 5), (1.25, 12, 1, 4, 4),
                              (1.0, 10, 2, 4, 5), (1.25, 1, 1, 4, 1),
                              (2.0, 3, 1, 4, 2), (0.01, 8, 1, 4, 1)):
        got = expert_capacity(cf, T, k, E)
        check(got == want, "C(cf=%g, T=%d, k=%d, E=%d) = %d, want %d"
              % (cf, T, k, E, got, want))
    print("PASS expert_capacity = ceil(cf * T * k / E)")


def _moe_weights(cfg, seed):
    w = random_weights(cfg, seed)
    p = ("model.layers.0.block_sparse_moe." if "Mixtral" in cfg.architecture
         else "model.layers.0.mlp.")
    return {n[len(p):]: a for n, a in w.items() if n.startswith(p)}


def check_moe_block():
    rng = np.random.Generator(np.random.PCG64(21))
    for name in ARCHS + ("qwen-renorm",):
        cfg = (cfg_of("qwen-moe-tiny", norm_topk_prob=True)
               if name == "qwen-renorm" else cfg_of(name))
        w = _moe_weights(cfg, 4)
        T = 24
        x = rng.standard_normal((T, cfg.hidden_size)).astype(np.float32)
        if cfg.moe.capacity_factor is not None:
            # Steer most tokens to expert 0 so that capacity drops happen.
            w["router.weight"] = w["router.weight"].copy()
            w["router.weight"][0] += 0.5 * x.mean(0) / np.abs(x.mean(0)).max()
        got, (rw, ids, slots) = models.moe_block(cfg, x, w,
                                                 return_routing=True)
        got = got.numpy()
        want = ref.moe(cfg, x.astype(np.float64),
                       {n: a.astype(np.float64) for n, a in w.items()})
        e = rel_err(got, want)
        check(e < TOL, "%s: moe_block rel err %.3e" % (name, e))
        extra = ""
        if slots is not None:
            C = expert_capacity(cfg.moe.capacity_factor, T, 1,
                                cfg.moe.num_experts)
            dropped = (slots[:, 0] < 0).numpy()
            check(dropped.sum() > 0, "no drops happened")
            check(not got[dropped].any(), "dropped tokens must give 0")
            check(got[~dropped].any(1).all(), "kept tokens give non-zero")
            # earliest tokens win: the kept tokens of an expert are its first C
            for e_ in range(cfg.moe.num_experts):
                toks = [t for t in range(T) if ids[t, 0] == e_]
                kept = [t for t in toks if slots[t, 0] >= 0]
                check(kept == toks[:C], "expert %d keeps its first %d tokens"
                      % (e_, C))
            extra = ", C=%d, %d of %d tokens dropped" % (C, dropped.sum(), T)
        else:
            check(rw.shape == (T, cfg.moe.top_k), "weights shape")
        if cfg.moe.renormalize:
            check(np.allclose(rw.sum(-1).numpy(), 1.0, atol=1e-6), "renorm")
        print("PASS moe-block %s (rel err %.1e%s)" % (name, e, extra))


def check_model():
    from moe_reference.weights import random_ids
    for name in ARCHS + ("scmoe-tiny",):
        cfg = cfg_of(name)
        w = random_weights(cfg, 8, with_lm_head=True)
        ids = random_ids(cfg.vocab_size, 2, 6, 8)
        m = models.MoEModel(cfg, w)
        got = m.forward(ids).numpy()
        want = ref.forward(cfg, w, ids)
        check(got.shape == (2, 6, cfg.hidden_size), "shape")
        e = rel_err(got, want)
        check(e < TOL, "%s: hidden states rel err %.3e" % (name, e))
        lg = m.forward(ids, return_logits=True).numpy()
        check(lg.shape == (2, 6, cfg.vocab_size), "logits shape")
        el = rel_err(lg, ref.forward(cfg, w, ids, logits=True))
        check(el < TOL, "%s: logits rel err %.3e" % (name, el))
        print("PASS model %s vs float64 numpy loops (hidden %.1e, logits "
              "%.1e)" % (name, e, el))
    # Tied embeddings: logits use embed_tokens when lm_head is absent.
    cfg = cfg_of("mixtral-tiny", tie_word_embeddings=True)
    w = random_weights(cfg, 8)
    ids = random_ids(cfg.vocab_size, 1, 4, 8)
    m = models.MoEModel(cfg, w)
    h = m.forward(ids).numpy()
    lg = m.forward(ids, return_logits=True).numpy()
    check(np.allclose(lg, h @ w["model.embed_tokens.weight"].T, atol=1e-5),
          "tied logits")
    print("PASS model tie_word_embeddings")


CHECKS = {"attention": check_attention, "routing": check_routing,
          "capacity": check_capacity, "moe-block": check_moe_block,
          "model": check_model}


def main():
    names = sys.argv[1:]
    if not names or any(n not in CHECKS for n in names):
        raise SystemExit("usage: test_model.py %s ..." % "|".join(CHECKS))
    for n in names:
        CHECKS[n]()


if __name__ == "__main__":
    main()
