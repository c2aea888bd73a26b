#!/usr/bin/env -S /usr/bin/python3
"""Generation speed side by side, in one run, on the same threads: the
compiled model (moe-compile --max-seq-len, EXE --generate), llama.cpp (the
CPU engine people run MoE models with) and PyTorch eager (Hugging Face's
MixtralForCausalLM with its key/value cache), on a mid-size random Mixtral
in f32: H 1024, F 2816, 8 experts top-2, 4 layers, 16 heads / 4 kv heads,
vocab 32000.

For each engine: prefill tokens/s over a 512-token prompt, decode tokens/s
at batch 1 and 16 (one prompt token, then --tokens greedy tokens), and at
batch 1 the weight bytes a decode step reads divided by its time, as a
fraction of the machine's read bandwidth measured in the same run
(bench/read_bandwidth.c: a read of a 1 GiB buffer on the same threads).
Ratios are ours / theirs. Prints a Markdown table (docs/Performance.md).

llama.cpp comes from ../shared/anchors/llama-cpp.sh (--llama DIR: where it
was built; the safetensors are converted to GGUF f32 there). Hugging Face
transformers 4.40.2 comes from build/python-deps (utils/bootstrap.sh).

usage: generate_bench.py [--build build] [--workdir DIR] [--threads 2]
         [--tokens 128] [--prompt 512] [--llama DIR] [--skip-llama]
         [--skip-hf]
"""
import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
PY = "/usr/bin/python3"
CONFIG = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral",
    "vocab_size": 32000, "hidden_size": 1024, "intermediate_size": 2816,
    "num_hidden_layers": 4, "num_attention_heads": 16,
    "num_key_value_heads": 4, "head_dim": 64, "hidden_act": "silu",
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-05,
    "rope_theta": 1000000.0, "sliding_window": None, "num_local_experts": 8,
    "num_experts_per_tok": 2, "tie_word_embeddings": False,
    "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2,
}


def log(message):
    print("generate_bench: " + message, file=sys.stderr, flush=True)


def run(cmd, env=None, timeout=1800):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True,
                          text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        sys.exit("generate_bench: error: %s failed (exit %d):\n%s%s"
                 % (cmd[0], proc.returncode, proc.stdout[-2000:],
                    proc.stderr[-2000:]))
    return proc.stdout


def decode_step_bytes(c):
    """Weight bytes a batch-1 decode step reads (f32): every dense weight,
    the router, the top-k experts of each layer, the final norm, lm_head and
    one embedding row."""
    h, f, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    nh, nkv, d = (c["num_attention_heads"], c["num_key_value_heads"],
                  c["head_dim"])
    attention = h * nh * d * 2 + h * nkv * d * 2
    per_layer = (attention + 2 * h + c["num_local_experts"] * h
                 + c["num_experts_per_tok"] * 3 * f * h)
    return 4 * (c["num_hidden_layers"] * per_layer + h + v * h + h)


def bandwidth(work, threads):
    exe = work / "read_bandwidth"
    run(["cc", "-O3", "-march=native", "-pthread",
         ROOT / "bench" / "read_bandwidth.c", "-o", exe])
    out = run([exe, threads])
    return float(re.search(r"read_bandwidth_gbs (\S+)", out).group(1)) * 1e9


def ours(args, work, model):
    """(prefill tok/s, decode B=1 tok/s, decode B=16 tok/s)."""
    compiler = pathlib.Path(args.build) / "bin" / "moe-compile"
    config = work / "model" / "config.json"
    results = {}
    for name, batch, prompt, tokens in (
            ("prefill", 1, args.prompt, 1),
            ("decode1", 1, 1, args.tokens),
            ("decode16", 16, 1, args.tokens)):
        exe = work / ("ours-" + name)
        ids = work / ("ids-%d-%d.npy" % (batch, prompt))
        run([PY, ROOT / "reference" / "make_ids.py", "--config", config,
             "--batch", batch, "--seq", prompt, "-o", ids])
        log("compiling ours for %s (batch %d, prompt %d)" % (name, batch,
                                                             prompt))
        run([compiler, config, "--batch", batch, "--seq-len", prompt,
             "--max-seq-len", prompt + tokens, "-o", exe])
        out = run([exe, "--weights", model, "--input", ids, "--output",
                   work / "out.npy", "--generate", tokens, "--threads",
                   args.threads, "--warmup", 1])
        if name == "prefill":
            results[name] = float(re.search(
                r"prefill [0-9.]+ ms \(([0-9.]+) tokens/s\)", out).group(1))
        else:
            results[name] = float(re.search(
                r"decode [0-9.]+ ms per token, ([0-9.]+) tokens/s",
                out).group(1))
    return results


def llama(args, work):
    bin_dir = pathlib.Path(args.llama) / "bin"
    gguf = work / "model-f32.gguf"
    if not gguf.exists():
        log("converting the safetensors to GGUF f32 (llama-cpp.sh convert)")
        env = dict(os.environ, PYTHONPATH=str(pathlib.Path(args.build) /
                                              "python-deps"))
        run(["bash", ROOT.parent / "shared" / "anchors" / "llama-cpp.sh",
             "convert", args.llama, work / "model", gguf, "f32"], env=env)
    log("llama.cpp: llama-bench (prefill)")
    out = run([bin_dir / "llama-bench", "-m", gguf, "-t", args.threads,
               "-p", args.prompt, "-n", 0, "-o", "json"])
    rows = json.loads(out)
    results = {"prefill": rows[0]["avg_ts"],
               "version": "%s (build %s)" % (rows[0].get("build_commit"),
                                             rows[0].get("build_number"))}
    log("llama.cpp: llama-batched-bench (decode at batch 1 and 16)")
    out = run([bin_dir / "llama-batched-bench", "-m", gguf, "-c", 4096,
               "-npp", 1, "-ntg", args.tokens, "-npl", "1,16", "-t",
               args.threads, "-tb", args.threads])
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 8 and cells[2] in ("1", "16") and \
                cells[0].isdigit():
            results["decode" + cells[2]] = float(cells[7])
    src = list((pathlib.Path(args.llama) / "src").glob("llama_cpp_python-*"))
    if src:
        results["version"] = "llama.cpp %s, vendored in %s" % (
            results["version"], src[0].name)
    return results


HF_SCRIPT = r"""
import json, sys, time
import numpy as np, torch, transformers
sys.path.insert(0, sys.argv[1])
from moe_reference import safetensors_np
threads, model_dir, prompt, tokens = (int(sys.argv[2]), sys.argv[3],
                                      int(sys.argv[4]), int(sys.argv[5]))
torch.set_num_threads(threads)
config = transformers.AutoConfig.from_pretrained(model_dir)
config._attn_implementation = "eager"
model = transformers.MixtralForCausalLM(config).eval()
tensors = safetensors_np.load(model_dir + "/model.safetensors")
model.load_state_dict({n: torch.from_numpy(np.ascontiguousarray(v))
                       for n, v in tensors.items()})
gen = model.generation_config
gen.eos_token_id = None
gen.pad_token_id = 0
out = {}
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    ids = torch.randint(0, config.vocab_size, (1, prompt), generator=g)
    model(ids)                                  # warm-up
    start = time.perf_counter()
    model(ids)
    out["prefill"] = prompt / (time.perf_counter() - start)
    for batch in (1, 16):
        ids = torch.randint(0, config.vocab_size, (batch, 1), generator=g)
        kw = dict(attention_mask=torch.ones_like(ids), do_sample=False,
                  use_cache=True)
        model.generate(ids, max_new_tokens=4, min_new_tokens=4, **kw)
        start = time.perf_counter()
        model.generate(ids, max_new_tokens=tokens, min_new_tokens=tokens,
                       **kw)
        out["decode%d" % batch] = batch * tokens / (time.perf_counter()
                                                    - start)
print(json.dumps(out))
"""


def hf(args, work):
    log("PyTorch eager (transformers %s)" % "4.40.2")
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(args.build) /
                                          "python-deps"))
    out = run([PY, "-c", HF_SCRIPT, ROOT / "reference", args.threads,
               work / "model", args.prompt, args.tokens], env=env)
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--workdir", default="/tmp/moe-generate-bench")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--llama", default=str(ROOT.parent / "llama"),
                    help="where llama-cpp.sh built llama.cpp")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    work = pathlib.Path(args.workdir)
    (work / "model").mkdir(parents=True, exist_ok=True)
    config = work / "model" / "config.json"
    config.write_text(json.dumps(CONFIG, indent=2))
    model = work / "model" / "model.safetensors"
    if not model.exists():
        log("writing random weights (1.4 GB)")
        run([PY, ROOT / "reference" / "make_weights.py", "--config", config,
             "--seed", 0, "--with-lm-head", "-o", model])
    if not args.skip_llama and not (pathlib.Path(args.llama) / "bin" /
                                    "llama-bench").exists():
        sys.exit("generate_bench: error: no llama.cpp in %s: run "
                 "../shared/anchors/llama-cpp.sh build %s, or --skip-llama"
                 % (args.llama, args.llama))

    bw = bandwidth(work, args.threads)
    log("read bandwidth %.1f GB/s on %d threads" % (bw / 1e9, args.threads))
    step = decode_step_bytes(CONFIG)
    engines = [("moe-mlir (compiled)", ours(args, work, model))]
    if not args.skip_llama:
        engines.append(("llama.cpp", llama(args, work)))
    if not args.skip_hf:
        engines.append(("PyTorch eager (HF)", hf(args, work)))

    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    print("Measured %s on %s, %d threads, read bandwidth %.1f GB/s; a "
          "batch-1 decode step reads %.0f MB of weights.\n"
          % (time.strftime("%Y-%m-%d"), cpu, args.threads, bw / 1e9,
             step / 1e6))
    print("| engine, f32 | prefill %d tok/s | decode B=1 tok/s | decode B=16 "
          "tok/s | B=1 bandwidth |" % args.prompt)
    print("|---|---|---|---|---|")
    for name, r in engines:
        print("| %s | %.0f | %.1f | %.0f | %.0f %% |"
              % (name, r["prefill"], r["decode1"], r["decode16"],
                 100 * r["decode1"] * step / bw))
    ours_r = engines[0][1]
    for name, r in engines[1:]:
        print("\nmoe-mlir / %s: prefill %.2fx, decode B=1 %.2fx, decode "
              "B=16 %.2fx" % (name, ours_r["prefill"] / r["prefill"],
                              ours_r["decode1"] / r["decode1"],
                              ours_r["decode16"] / r["decode16"]))
        if "version" in r:
            print("%s: %s" % (name, r["version"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
