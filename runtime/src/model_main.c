/*===- model_main.c - command line of a compiled model executable ---------===*
 *
 * <exe> --weights W.safetensors --input ids.npy --output out.npy [--iters N]
 * <exe> ... --generate N [--eos ID] [--lengths L.npy] [--output-logits F.npy]
 *
 * Reads the manifest, the command line, the weights and the ids, and runs
 * the forward pass; the --generate loop is in generate.c.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/comm.h"
#include "moert/model.h"
#include "moert/npy.h"
#include "moert/safetensors.h"
#include "moert/trace.h"

#include "cpu_gemm.h"
#include "model_internal.h"

#include <errno.h>
#include <math.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int modelError(const char *format, ...) {
  va_list args;
  va_start(args, format);
  char message[2048];
  vsnprintf(message, sizeof(message), format, args);
  va_end(args);
  /* Under mpiexec a failing rank takes the others down instead of leaving
   * them in a collective. */
  if (moert_comm_size() > 1)
    moert_comm_abort(message);
  fprintf(stderr, "error: %s\n", message);
  return 1;
}

int statusError(moert_status_t status) {
  int rc = modelError("%s", moert_status_message(status));
  moert_status_free(status);
  return rc;
}

static void usage(FILE *out, const char *prog, const Manifest *m) {
  fprintf(out,
          "usage: %s --weights W.safetensors --input ids.npy --output out.npy "
          "[--iters N] [--warmup N] [--threads N] [--generate N ...]\n"
          "\n"
          "Runs the compiled %s model (prefill) on token ids and writes the "
          "final-normed hidden states.\n"
          "\n"
          "  --weights PATH   safetensors file with Hugging Face tensor names "
          "(f32, bf16 or f16); repeat it once per shard of a sharded "
          "checkpoint\n"
          "  --input PATH     .npy of int64 or int32 token ids, shape "
          "[%" PRId64 ", %" PRId64 "], each in [0, %" PRId64 ")\n"
          "  --output PATH    .npy of float32 hidden states [%" PRId64
          ", %" PRId64 ", %" PRId64 "] to write\n"
          "  --iters N        forward passes to time (default 1); prints the "
          "mean time per pass\n"
          "  --warmup N       untimed passes before them (default 0); with "
          "--generate, untimed generations\n"
          "  --threads N      threads of the matrix products (default: "
          "OPENBLAS_NUM_THREADS, else the cores)\n"
          "  --logits         write logits [B, S, vocab] instead: the hidden "
          "states times lm_head.weight (or the embedding when the config ties "
          "them)\n"
          "  --generate N     generate N tokens greedily after each prompt "
          "(executables compiled with --max-seq-len M, S + N <= M): --output "
          "gets int64 ids [B, S + N], each row its prompt, its N tokens, then "
          "-1 for a shorter prompt's padding\n"
          "  --eos ID         with --generate: a row ends at its first ID; its "
          "later positions hold ID\n"
          "  --lengths PATH   with --generate: .npy of int64 or int32 [B], "
          "each row's prompt length in [1, S]; the prompts are right-padded "
          "(default: all S)\n"
          "  --output-logits PATH  with --generate: also write every step's "
          "logits, float32 [B, N, vocab] (NaN after every row has ended)\n"
          "  --stats          print each rank's collective calls and bytes\n"
          "  --trace FILE     write a Chrome trace of every rank's products,\n"
          "                   collectives and waits (utils/trace-summary.py)\n"
          "  --print-manifest print the weight manifest and exit\n"
          "  --help           this text\n",
          prog, m->arch, m->batch, m->seq, m->vocab, m->batch, m->seq,
          m->hidden);
  if (m->maxSeq)
    fprintf(out,
            "\nCompiled for generation: a prompt and its generated "
            "tokens fit in %" PRId64 " positions.\n",
            m->maxSeq);
  int world = moert_plan_world_size(&m->plan);
  if (world > 1)
    fprintf(out,
            "\nCompiled for %d ranks (dp=%d tp=%d ep=%d etp=%d pp=%d): run it "
            "as mpiexec -n %d %s ...; rank 0 writes the output.\n",
            world, m->plan.dp, m->plan.tp, m->plan.ep, m->plan.etp, m->plan.pp,
            world, prog);
}

static int parseManifest(const char *text, Manifest *m) {
  memset(m, 0, sizeof(*m));
  m->plan = (moert_plan_t){1, 1, 1, 1, 1};
  snprintf(m->gemm, sizeof(m->gemm), "f32");
  if (strncmp(text, "moe-model 1\n", 12) != 0)
    return modelError(
        "the executable's weight manifest has an unknown version");
  const char *line = text + 12;
  while (*line && strncmp(line, "tensor", 6) != 0 &&
         strncmp(line, "stage ", 6) != 0) {
    char key[32];
    char value[128];
    if (!strncmp(line, "plan ", 5)) {
      moert_plan_t *p = &m->plan;
      if (sscanf(line, "plan %d %d %d %d %d", &p->dp, &p->tp, &p->ep, &p->etp,
                 &p->pp) != 5)
        return modelError("malformed manifest line: %.60s", line);
      line = strchr(line, '\n');
      if (!line)
        break;
      ++line;
      continue;
    }
    if (sscanf(line, "%31s %127s", key, value) != 2)
      return modelError("malformed manifest line: %.60s", line);
    if (!strcmp(key, "arch"))
      snprintf(m->arch, sizeof(m->arch), "%s", value);
    else if (!strcmp(key, "batch"))
      m->batch = strtoll(value, NULL, 10);
    else if (!strcmp(key, "seq"))
      m->seq = strtoll(value, NULL, 10);
    else if (!strcmp(key, "hidden"))
      m->hidden = strtoll(value, NULL, 10);
    else if (!strcmp(key, "vocab"))
      m->vocab = strtoll(value, NULL, 10);
    else if (!strcmp(key, "blob"))
      m->blob = strtoll(value, NULL, 10);
    else if (!strcmp(key, "tied"))
      m->tied = atoi(value);
    else if (!strcmp(key, "max-seq"))
      m->maxSeq = strtoll(value, NULL, 10);
    else if (!strcmp(key, "gemm"))
      snprintf(m->gemm, sizeof(m->gemm), "%s", value);
    /* Other keys (microbatches) describe the program for --print-manifest;
     * the compiled code does not need the runtime to know them. */
    line = strchr(line, '\n');
    if (!line)
      break;
    ++line;
  }
  m->tensors = line ? line : "";
  if (m->batch < 1 || m->seq < 1 || m->hidden < 1 || m->vocab < 1 ||
      m->blob < 1)
    return modelError("the executable's weight manifest is incomplete");
  return 0;
}

static int loadLengths(const Manifest *m, const char *path, int64_t *lengths) {
  moert_npy_array_t array;
  moert_status_t status = moert_npy_read(path, &array);
  if (status)
    return statusError(status);
  int rc = 0;
  if (array.rank != 1 || array.shape[0] != m->batch)
    rc = modelError("%s: prompt lengths must have shape [%" PRId64 "] (one per "
                    "sequence), got %d dimension%s of %" PRId64 "%s",
                    path, m->batch, array.rank, array.rank == 1 ? "" : "s",
                    array.rank ? array.shape[0] : 0,
                    array.rank > 1 ? ", ..." : "");
  else if (array.dtype != MOERT_DTYPE_I64 && array.dtype != MOERT_DTYPE_I32)
    rc = modelError("%s: prompt lengths must be int64 or int32, got %s", path,
                    moert_dtype_name(array.dtype));
  for (int64_t b = 0; !rc && b < m->batch; ++b) {
    lengths[b] = array.dtype == MOERT_DTYPE_I64
                     ? ((const int64_t *)array.data)[b]
                     : ((const int32_t *)array.data)[b];
    if (lengths[b] < 1 || lengths[b] > m->seq)
      rc = modelError("%s: sequence %" PRId64 " has prompt length %" PRId64
                      "; lengths must be in [1, %" PRId64 "] (the compiled "
                      "--seq-len)",
                      path, b, lengths[b], m->seq);
  }
  moert_npy_free(&array);
  return rc;
}

/* Reads token ids, checks their shape and range, converts them to int64:
 * this rank's rows to `ids`, all of them to `all` (if not NULL). With
 * `lengths`, the ids past a row's length are padding: not checked, and 0
 * in the model's input. */
static int loadIds(const Manifest *m, const char *path, const int64_t *lengths,
                   int64_t *ids, int64_t *all) {
  moert_npy_array_t array;
  moert_status_t status = moert_npy_read(path, &array);
  if (status)
    return statusError(status);
  int rc = 0;
  if (array.rank != 2 || array.shape[0] != m->batch ||
      array.shape[1] != m->seq) {
    char shape[128] = "";
    for (int i = 0; i < array.rank; ++i)
      snprintf(shape + strlen(shape), sizeof(shape) - strlen(shape),
               "%s%" PRId64, i ? ", " : "", array.shape[i]);
    rc = modelError(
        "%s: token ids have shape [%s]; this executable was compiled "
        "for [%" PRId64 ", %" PRId64 "] (moe-compile --batch/--seq-len)",
        path, shape, m->batch, m->seq);
  } else if (array.dtype != MOERT_DTYPE_I64 && array.dtype != MOERT_DTYPE_I32) {
    rc = modelError("%s: token ids must be int64 or int32, got %s", path,
                    moert_dtype_name(array.dtype));
  } else {
    int64_t n = m->batch * m->seq;
    int64_t first = moert_comm_coords().dp * localBatch(m) * m->seq;
    int64_t local = localBatch(m) * m->seq;
    for (int64_t i = 0; i < n && !rc; ++i) {
      int64_t id = array.dtype == MOERT_DTYPE_I64
                       ? ((const int64_t *)array.data)[i]
                       : ((const int32_t *)array.data)[i];
      if (lengths && i % m->seq >= lengths[i / m->seq])
        id = 0;
      else if (id < 0 || id >= m->vocab)
        rc = modelError("%s: token id %" PRId64 " at [%" PRId64 ", %" PRId64
                        "] is outside the vocabulary [0, %" PRId64 ")",
                        path, id, i / m->seq, i % m->seq, m->vocab);
      if (i >= first && i < first + local)
        ids[i - first] = id;
      if (all)
        all[i] = id;
    }
  }
  moert_npy_free(&array);
  return rc;
}

static int writeHidden(const Manifest *m, const float *hidden,
                       const char *path) {
  int64_t shape[3] = {m->batch, m->seq, m->hidden};
  moert_status_t status = moert_npy_write_f32(path, 3, shape, hidden);
  return status ? statusError(status) : 0;
}

/* out [rows, V] = hidden [rows, H] · headᵀ. */
void computeLogits(const Manifest *m, const float *head, const float *hidden,
                   int64_t rows, float *out) {
  moertCpuGemm(rows, m->vocab, m->hidden, hidden, m->hidden, 0, head, m->hidden,
               1, out, m->vocab, 0);
}

/* Writes logits = hidden · lm_headᵀ [B, S, V]. */
static int writeLogits(const Manifest *m, const float *hidden,
                       const Checkpoint *ckpt, const char *path) {
  int64_t rows = m->batch * m->seq;
  float *head = loadHead(m, ckpt);
  if (!head)
    return 1;
  float *out = malloc((size_t)(rows * m->vocab) * sizeof(float));
  int rc = 0;
  if (!out) {
    rc = modelError("out of memory for the logits");
  } else {
    computeLogits(m, head, hidden, rows, out);
    int64_t shape[3] = {m->batch, m->seq, m->vocab};
    moert_status_t status = moert_npy_write_f32(path, 3, shape, out);
    if (status)
      rc = statusError(status);
  }
  free(head);
  free(out);
  return rc;
}

static int parseCount(const char *flag, const char *value, long min,
                      long *out) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || *end || v < min)
    return modelError("%s expects an integer >= %ld, got '%s'", flag, min,
                      value);
  *out = v;
  return 0;
}

static int runModel(int argc, char **argv, const char *manifestText,
                    const moert_entry_points_t *entry, const Manifest *m,
                    const moert_layout_t *layout);

int moert_model_main(int argc, char **argv, const char *manifestText,
                     moert_forward_fn forward) {
  moert_entry_points_t entry = {forward, NULL, NULL};
  return moert_model_run(argc, argv, manifestText, &entry);
}

int moert_model_run(int argc, char **argv, const char *manifestText,
                    const moert_entry_points_t *entry) {
#if defined(__GLIBC__)
  /* The compiled code allocates and frees the same large buffers every
   * pass: keep them in the heap (glibc's largest mmap threshold, no
   * trimming) instead of mapping fresh zeroed pages each time. */
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
  Manifest m;
  if (parseManifest(manifestText, &m))
    return 1;
  moert_status_t gemmStatus = moert_set_gemm_mode(m.gemm);
  if (gemmStatus)
    return statusError(gemmStatus);
  moert_layout_t layout;
  moert_status_t commStatus = moert_layout_parse(manifestText, &layout);
  if (!commStatus)
    commStatus = moert_comm_init(&layout, &argc, &argv);
  if (commStatus) {
    int rc = statusError(commStatus);
    moert_layout_free(&layout);
    moert_comm_finalize();
    return rc;
  }
  int rc = runModel(argc, argv, manifestText, entry, &m, &layout);
  moert_layout_free(&layout);
  moert_comm_finalize();
  return rc;
}

/* Reads the command line into `o`; returns -1 when it asked only for help or
 * the manifest (printed), 1 after an error, 0 otherwise. */
static int parseOptions(int argc, char **argv, const char *manifestText,
                        const Manifest *m, Options *o) {
  memset(o, 0, sizeof(*o));
  o->iters = 1;
  o->eos = -1;
  for (int i = 1; i < argc; ++i) {
    const char *arg = argv[i];
    if (!strcmp(arg, "--stats")) {
      o->stats = 1;
      continue;
    }
    if (!strcmp(arg, "--logits")) {
      o->logits = 1;
      continue;
    }
    if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
      usage(stdout, argv[0], m);
      return -1;
    }
    if (!strcmp(arg, "--print-manifest")) {
      fputs(manifestText, stdout);
      return -1;
    }
    if (!strcmp(arg, "--weights")) {
      if (i + 1 >= argc)
        return modelError("--weights expects a value");
      if (o->numWeights == MAX_SHARDS)
        return modelError("more than %d --weights files", MAX_SHARDS);
      o->weights[o->numWeights++] = argv[++i];
      continue;
    }
    const char **target = !strcmp(arg, "--input")           ? &o->input
                          : !strcmp(arg, "--output")        ? &o->output
                          : !strcmp(arg, "--lengths")       ? &o->lengths
                          : !strcmp(arg, "--output-logits") ? &o->outputLogits
                          : !strcmp(arg, "--trace")         ? &o->trace
                                                            : NULL;
    long *count = !strcmp(arg, "--iters")      ? &o->iters
                  : !strcmp(arg, "--warmup")   ? &o->warmup
                  : !strcmp(arg, "--threads")  ? &o->threads
                  : !strcmp(arg, "--generate") ? &o->generate
                  : !strcmp(arg, "--eos")      ? &o->eos
                                               : NULL;
    if (!target && !count) {
      usage(stderr, argv[0], m);
      return modelError("unknown argument '%s'", arg);
    }
    if (i + 1 >= argc)
      return modelError("%s expects a value", arg);
    const char *value = argv[++i];
    if (target)
      *target = value;
    else if (parseCount(arg, value,
                        !strcmp(arg, "--warmup") || !strcmp(arg, "--eos") ? 0
                                                                          : 1,
                        count))
      return 1;
  }
  if (!o->numWeights || !o->input || !o->output) {
    usage(stderr, argv[0], m);
    return modelError("--weights, --input and --output are required");
  }
  if (!o->generate) {
    const char *needs = o->eos >= 0       ? "--eos"
                        : o->lengths      ? "--lengths"
                        : o->outputLogits ? "--output-logits"
                                          : NULL;
    if (needs)
      return modelError("%s applies to generation; add --generate N", needs);
    return 0;
  }
  if (!m->maxSeq)
    return modelError(
        "--generate: this executable was compiled without "
        "--max-seq-len, so it has no decode step; compile it with "
        "moe-compile --max-seq-len M");
  if (m->seq + o->generate > m->maxSeq)
    return modelError(
        "--generate %ld: the prompt (%" PRId64 " positions) and %ld "
        "tokens need %" PRId64 " positions, but the executable's "
        "cache holds %" PRId64 " (moe-compile --max-seq-len)",
        o->generate, m->seq, o->generate, m->seq + o->generate, m->maxSeq);
  if (o->eos >= m->vocab)
    return modelError("--eos %ld is outside the vocabulary [0, %" PRId64 ")",
                      o->eos, m->vocab);
  if (o->logits)
    return modelError(
        "--logits writes the prefill's logits; with --generate use "
        "--output-logits FILE");
  if (o->iters != 1)
    return modelError(
        "--iters times the prefill pass; --generate prints its own "
        "times (--warmup N generates N times untimed first)");
  return 0;
}

/* The world rank with these coordinates in the compiled layout (0 when the
 * program runs on one rank). */
int worldRankAt(const moert_layout_t *layout, int pp, int dp, int tp) {
  for (int r = 0; layout->ranks && r < layout->world; ++r) {
    const moert_coords_t *c = &layout->ranks[r].coords;
    if (c->pp == pp && c->dp == dp && c->tp == tp)
      return r;
  }
  return 0;
}

/* Brings the last stage's output (this rank's rows `result`) to rank 0 and
 * writes it there. */
static int writeOutput(const Manifest *m, const moert_layout_t *layout,
                       const Options *o, const Checkpoint *ckpt,
                       const moert_memref3d_f32_t *result) {
  int rc = 0;
  /* This rank's rows, dense, then gathered in dp order. */
  int64_t local = localBatch(m) * m->seq * m->hidden;
  float *dense = malloc((size_t)local * sizeof(float));
  /* Every dp group gathers to its first rank (tensor-parallel replicas hold
   * the same rows); world rank 0 writes. */
  moert_coords_t coords = moert_comm_coords();
  int gathers = coords.dp == 0;
  float *all =
      gathers ? malloc((size_t)(local * m->plan.dp) * sizeof(float)) : NULL;
  if (!dense || (gathers && !all)) {
    rc = modelError("out of memory for the output");
  } else {
    size_t at = 0;
    for (int64_t b = 0; b < localBatch(m); ++b)
      for (int64_t s = 0; s < m->seq; ++s)
        for (int64_t h = 0; h < m->hidden; ++h)
          dense[at++] =
              result->aligned[result->offset + b * result->strides[0] +
                              s * result->strides[1] + h * result->strides[2]];
    /* The last pipeline stage holds the output: its dp group gathers it,
     * and its first rank passes it on to rank 0. */
    if (coords.pp == m->plan.pp - 1)
      moert_comm_gather_f32(dense, all, (long)local, MOERT_GROUP_DP);
    if (m->plan.pp > 1)
      moert_comm_move_f32(all, (long)(local * m->plan.dp),
                          worldRankAt(layout, m->plan.pp - 1, 0, 0), 0);
    if (moert_comm_rank() == 0)
      rc = o->logits ? writeLogits(m, all, ckpt, o->output)
                     : writeHidden(m, all, o->output);
  }
  free(dense);
  free(all);
  return rc;
}

void freeStep(moert_step_result_t *r) {
  moert_buffer_free(r->hidden.allocated);
  moert_buffer_free(r->keys.allocated);
  moert_buffer_free(r->values.allocated);
  memset(r, 0, sizeof(*r));
}

/* Runs the forward pass (or the prefill) --warmup + --iters times and
 * writes the last one's output. */
static int runForward(const Manifest *m, const moert_layout_t *layout,
                      const Options *o, const moert_entry_points_t *entry,
                      const Checkpoint *ckpt, moert_memref1d_f32_t *blobRef,
                      moert_memref2d_i64_t *idsRef) {
  moert_step_result_t result = {0};
  double elapsed = 0;
  for (long i = 0; i < o->warmup + o->iters; ++i) {
    freeStep(&result);
    /* A pass starts on every rank together and ends when the last rank is
     * done: without the barriers a pipeline's first stage would start the
     * next pass while the last one finishes this one, and the time would
     * be throughput, not the latency of a pass. */
    moert_comm_barrier();
    double start = now();
    if (entry->forward)
      entry->forward(&result.hidden, idsRef, blobRef);
    else
      entry->prefill(&result, idsRef, blobRef);
    moert_comm_barrier();
    if (i >= o->warmup)
      elapsed += now() - start;
  }
  int rc = writeOutput(m, layout, o, ckpt, &result.hidden);
  /* The ranks' clocks measured the same barrier-to-barrier passes; report
   * the largest. */
  elapsed = moert_comm_max_f64(elapsed);
  if (!rc && moert_comm_rank() == 0)
    printf("%s: batch %" PRId64 ", seq %" PRId64 ", %d rank%s: %.3f ms per "
           "forward pass (%ld iterations)\n",
           m->arch, m->batch, m->seq, moert_comm_size(),
           moert_comm_size() == 1 ? "" : "s", elapsed * 1e3 / (double)o->iters,
           o->iters);
  if (!rc && o->stats) {
    fflush(stdout);
    moert_comm_print_stats(stdout);
  }
  freeStep(&result);
  return rc;
}

static int runModel(int argc, char **argv, const char *manifestText,
                    const moert_entry_points_t *entry, const Manifest *mp,
                    const moert_layout_t *layout) {
  const Manifest m = *mp;
  Options o;
  int parsed = parseOptions(argc, argv, manifestText, &m, &o);
  if (parsed)
    return parsed < 0 ? 0 : parsed;
  if (!entry->forward && !(entry->prefill && entry->decode))
    return modelError("the executable defines neither forward nor prefill and "
                      "decode");
  if (o.threads > 0) {
    moertSetCpuThreads((int)o.threads);
  }

  float *blob = moert_buffer_alloc((size_t)m.blob * sizeof(float));
  int64_t *ids =
      moert_buffer_alloc((size_t)(localBatch(&m) * m.seq) * sizeof(int64_t));
  int64_t *allIds = malloc((size_t)(m.batch * m.seq) * sizeof(int64_t));
  int64_t *lengths = malloc((size_t)m.batch * sizeof(int64_t));
  if (!blob || !ids || !allIds || !lengths) {
    moert_buffer_free(blob);
    moert_buffer_free(ids);
    free(allIds);
    free(lengths);
    return modelError("out of memory for %" PRId64 " weights", m.blob);
  }
  for (int64_t b = 0; b < m.batch; ++b)
    lengths[b] = m.seq;
  Checkpoint ckpt;
  int rc = openCheckpoint(&ckpt, o.weights, o.numWeights);
  if (!rc)
    rc = loadWeights(&m, &ckpt, blob);
  if (!rc && o.lengths)
    rc = loadLengths(&m, o.lengths, lengths);
  if (!rc)
    rc = loadIds(&m, o.input, o.lengths ? lengths : NULL, ids, allIds);

  moert_memref1d_f32_t blobRef = {blob, blob, 0, {m.blob}, {1}};
  moert_memref2d_i64_t idsRef = {
      ids, ids, 0, {localBatch(&m), m.seq}, {m.seq, 1}};
  /* Test hook for the failure tests: this rank dies before the first pass,
   * as a crashed process would. */
  const char *killRank = getenv("MOERT_TEST_KILL_RANK");
  if (!rc && killRank && atoi(killRank) == moert_comm_rank())
    raise(SIGKILL);
  if (!rc && o.trace)
    moert_trace_start();
  if (!rc && o.generate) {
    for (long w = 0; !rc && w < o.warmup; ++w)
      rc = generateTokens(&m, layout, &o, entry, &ckpt, &blobRef, lengths, ids,
                          allIds, 1);
    if (!rc)
      rc = generateTokens(&m, layout, &o, entry, &ckpt, &blobRef, lengths, ids,
                          allIds, 0);
  } else if (!rc) {
    rc = runForward(&m, layout, &o, entry, &ckpt, &blobRef, &idsRef);
  }
  if (!rc && o.trace) {
    moert_status_t status = moert_trace_write(o.trace);
    if (status)
      rc = statusError(status);
  }
  closeCheckpoint(&ckpt);
  moert_buffer_free(blob);
  moert_buffer_free(ids);
  free(allIds);
  free(lengths);
  return rc;
}
