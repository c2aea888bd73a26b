#!/usr/bin/env -S /usr/bin/python3
"""Communication overlap, side by side in one run: ScMoE overlapped
(moe-compile --overlap=all-to-all) against ScMoE blocking and against a
top-2 Mixtral of the same width (every layer MoE, blocking), on ep = 2 and
ep = 4 (dp = ep, one sequence per rank); and a Qwen2-MoE layer stack with
its shared expert overlapped against blocking.

On one machine the ranks' transfers are memory copies on the cores that
compute, so each configuration also runs on an emulated link
(MOERT_LINK=GBPS:LATENCY_US, docs/Parallelism.md: a collective completes no
earlier than latency + bytes / bandwidth after its start; the rank sleeps).
Per configuration and link: ms per forward pass (best of --runs runs of
--iters passes), the speed-up of the overlapped program over the blocking
one (and over Mixtral top-2), Mixtral's exchanges in 4 chunks
(--overlap-chunks 4: one chunk travels while the previous one's experts
compute) against Mixtral blocking, and, from the overlapped run's trace
(EXE --trace, utils/trace-summary.py), the fraction of communication time
hidden behind compute. Prints a Markdown table (docs/Performance.md).

The models are random (reference/make_weights.py): H 512, 8 experts of
width 1024 (ScMoE and Qwen2-MoE top-1 with a dense/shared MLP of 1024,
Mixtral top-2), 4 layers, 8 heads / 4 kv heads, vocab 1000, 128 tokens per
rank. A link slow enough for the transfers to weigh against this CPU's
compute (1-5 Gb/s) shows what the overlap can hide; at 25 Gb/s they are a
few percent of the blocking program's time here.

usage: overlap_bench.py [--build build] [--workdir DIR] [--runs 3]
         [--iters 5] [--links none,100:10,25:10,5:10,1:10] [--eps 2,4]
"""
import argparse
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PY = "/usr/bin/python3"

COMMON = {
    "vocab_size": 1000, "hidden_size": 512, "num_hidden_layers": 4,
    "num_attention_heads": 8, "num_key_value_heads": 4, "hidden_act": "silu",
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0,
}
MODELS = {
    "scmoe": dict(COMMON, architectures=["ScMoeForCausalLM"],
                  model_type="scmoe", intermediate_size=1024, num_experts=8,
                  num_experts_per_tok=1, moe_intermediate_size=1024),
    "mixtral": dict(COMMON, architectures=["MixtralForCausalLM"],
                    model_type="mixtral", intermediate_size=1024,
                    num_local_experts=8, num_experts_per_tok=2),
    "qwen": dict(COMMON, architectures=["Qwen2MoeForCausalLM"],
                 model_type="qwen2_moe", num_experts=8,
                 num_experts_per_tok=1, moe_intermediate_size=1024,
                 shared_expert_intermediate_size=1024, norm_topk_prob=False),
}
SEQ = 128


def run(cmd, env=None, **kw):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, env=env, **kw)
    if proc.returncode != 0:
        sys.exit("overlap_bench.py: failed: %s\n%s%s"
                 % (" ".join(map(str, cmd)), proc.stdout, proc.stderr))
    return proc.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--workdir", default="/tmp/overlap-bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--links", default="none,100:10,25:10,5:10,1:10")
    ap.add_argument("--eps", default="2,4")
    a = ap.parse_args()
    build = pathlib.Path(a.build)
    work = pathlib.Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    compiler = build / "bin" / "moe-compile"
    import os
    env0 = dict(os.environ, OPENBLAS_NUM_THREADS="1")

    def prepare(name):
        cfg = work / ("%s.json" % name)
        cfg.write_text(json.dumps(MODELS[name]))
        weights = work / ("%s.safetensors" % name)
        if not weights.exists():
            run([PY, ROOT / "reference" / "make_weights.py", "--config", cfg,
                 "--seed", 1, "-o", weights])
        return cfg, weights

    def compile_exe(name, cfg, ep, overlap, chunks=1):
        exe = work / ("%s-ep%d-%s%d" % (name, ep, "ov" if overlap else "bl",
                                        chunks))
        cmd = [compiler, cfg, "--plan", "dp=%d,ep=%d" % (ep, ep), "--batch",
               ep, "--seq-len", SEQ, "-o", exe]
        if overlap:
            cmd += ["--overlap=all-to-all", "--overlap-chunks", chunks]
        run(cmd)
        return exe

    def time_exe(exe, weights, ids, ranks, link, trace=None):
        env = dict(env0)
        if link != "none":
            env["MOERT_LINK"] = link
        best = None
        for _ in range(a.runs):
            cmd = ["mpiexec", "-n", ranks, exe, "--weights", weights,
                   "--input", ids, "--output", work / "out.npy", "--iters",
                   a.iters, "--warmup", 1, "--threads", 1]
            out = run(cmd, env=env)
            ms = float(re.search(r"([0-9.]+) ms per forward pass",
                                 out).group(1))
            best = ms if best is None else min(best, ms)
        hidden = None
        if trace:
            run(["mpiexec", "-n", ranks, exe, "--weights", weights, "--input",
                 ids, "--output", work / "out.npy", "--iters", a.iters,
                 "--threads", 1, "--trace", trace], env=env)
            summary = run([PY, ROOT / "utils" / "trace-summary.py", trace])
            hidden = float(re.search(r"all ranks: .* \(([0-9]+)%\)",
                                     summary).group(1))
        return best, hidden

    links = a.links.split(",")
    rows = []
    for ep in [int(e) for e in a.eps.split(",")]:
        ids = work / ("ids-%d.npy" % ep)
        cfgs = {n: prepare(n) for n in MODELS}
        run([PY, ROOT / "reference" / "make_ids.py", "--config",
             cfgs["scmoe"][0], "-B", ep, "-S", SEQ, "--seed", 1, "-o", ids])
        exes = {
            "scmoe-bl": compile_exe("scmoe", cfgs["scmoe"][0], ep, False),
            "scmoe-ov": compile_exe("scmoe", cfgs["scmoe"][0], ep, True),
            "mixtral": compile_exe("mixtral", cfgs["mixtral"][0], ep, False),
            "mixtral-ov": compile_exe("mixtral", cfgs["mixtral"][0], ep, True,
                                      chunks=4),
            "qwen-bl": compile_exe("qwen", cfgs["qwen"][0], ep, False),
            "qwen-ov": compile_exe("qwen", cfgs["qwen"][0], ep, True),
        }
        for link in links:
            t = {}
            hidden = {}
            for key, exe in exes.items():
                weights = cfgs[key.split("-")[0]][1]
                trace = (work / ("%s-ep%d-%s.json" % (key, ep, link.replace(
                    ":", "_")))) if key.endswith("-ov") else None
                t[key], hidden[key] = time_exe(exe, weights, ids, ep, link,
                                               trace)
                print("  ep=%d link=%s %s: %.2f ms%s" % (
                    ep, link, key, t[key], "" if hidden[key] is None else
                    ", %.0f%% of communication hidden" % hidden[key]),
                    file=sys.stderr)
            rows.append((ep, link, t, hidden))

    print("| ep | link | ScMoE blocking | ScMoE overlapped | speed-up | "
          "hidden | Mixtral top-2 | ScMoE ov. vs top-2 | Mixtral 4 chunks "
          "| speed-up | hidden | Qwen2-MoE blocking | Qwen2-MoE overlapped "
          "| speed-up | hidden |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for ep, link, t, hidden in rows:
        print("| %d | %s | %.1f ms | %.1f ms | %.2fx | %.0f%% | %.1f ms | "
              "%.2fx | %.1f ms | %.2fx | %.0f%% | %.1f ms | %.1f ms | %.2fx | "
              "%.0f%% |" % (
                  ep, "none" if link == "none" else
                  "%s Gb/s, %s us" % tuple(link.split(":")),
                  t["scmoe-bl"], t["scmoe-ov"],
                  t["scmoe-bl"] / t["scmoe-ov"], hidden["scmoe-ov"],
                  t["mixtral"], t["mixtral"] / t["scmoe-ov"],
                  t["mixtral-ov"], t["mixtral"] / t["mixtral-ov"],
                  hidden["mixtral-ov"],
                  t["qwen-bl"], t["qwen-ov"], t["qwen-bl"] / t["qwen-ov"],
                  hidden["qwen-ov"]))


if __name__ == "__main__":
    main()
