/*===- model_main.c - command line of a compiled model executable ---------===*
 *
 * <exe> --weights W.safetensors --input ids.npy --output out.npy [--iters N]
 * <exe> ... --generate N [--eos ID] [--lengths L.npy] [--output-logits F.npy]
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/comm.h"
#include "moert/model.h"
#include "moert/npy.h"
#include "moert/safetensors.h"

#include "cpu_gemm.h"

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

#define MAX_LINE 1024

typedef struct Manifest {
  char arch[128];
  int64_t batch, seq, hidden, vocab, blob; /* batch: the global batch */
  int64_t maxSeq;                          /* cache capacity; 0: none */
  int tied;                                /* lm_head is embed_tokens */
  char gemm[16];                           /* products' compute mode */
  moert_plan_t plan;                       /* all 1 without a plan line */
  const char *tensors;                     /* first "tensor" line */
} Manifest;

/* Rows of the global batch this rank computes: its data-parallel slice. */
static int64_t localBatch(const Manifest *m) { return m->batch / m->plan.dp; }

static int error(const char *format, ...) __attribute__((format(printf, 1, 2)));
static int error(const char *format, ...) {
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

static int statusError(moert_status_t status) {
  int rc = error("%s", moert_status_message(status));
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
    return error("the executable's weight manifest has an unknown version");
  const char *line = text + 12;
  while (*line && strncmp(line, "tensor", 6) != 0 &&
         strncmp(line, "stage ", 6) != 0) {
    char key[32];
    char value[128];
    if (!strncmp(line, "plan ", 5)) {
      moert_plan_t *p = &m->plan;
      if (sscanf(line, "plan %d %d %d %d %d", &p->dp, &p->tp, &p->ep, &p->etp,
                 &p->pp) != 5)
        return error("malformed manifest line: %.60s", line);
      line = strchr(line, '\n');
      if (!line)
        break;
      ++line;
      continue;
    }
    if (sscanf(line, "%31s %127s", key, value) != 2)
      return error("malformed manifest line: %.60s", line);
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
    return error("the executable's weight manifest is incomplete");
  return 0;
}

/* The weights: one safetensors file, or the shards of a sharded checkpoint
 * (--weights given once per shard); each tensor must be in exactly one. */
#define MAX_SHARDS 256
typedef struct Checkpoint {
  moert_safetensors_t *files[MAX_SHARDS];
  const char *paths[MAX_SHARDS];
  int count;
} Checkpoint;

static void closeCheckpoint(Checkpoint *c) {
  for (int i = 0; i < c->count; ++i)
    moert_safetensors_close(c->files[i]);
  c->count = 0;
}

static int openCheckpoint(Checkpoint *c, const char **paths, int count) {
  c->count = 0;
  for (int i = 0; i < count; ++i) {
    moert_status_t status = moert_safetensors_open(paths[i], &c->files[i]);
    if (status) {
      closeCheckpoint(c);
      return statusError(status);
    }
    c->paths[i] = paths[i];
    c->count = i + 1;
  }
  return 0;
}

/* The shard holding tensor `name`; NULL (with `*status` set) when no shard
 * or more than one has it. */
static moert_safetensors_t *findShard(const Checkpoint *c, const char *name,
                                      moert_status_t *status) {
  int found = -1;
  *status = NULL;
  for (int i = 0; i < c->count; ++i) {
    const moert_tensor_view_t *view;
    moert_status_t missing = moert_safetensors_find(c->files[i], name, &view);
    if (missing) {
      moert_status_free(missing);
      continue;
    }
    if (found >= 0) {
      *status = moert_status_make(MOERT_INVALID_ARGUMENT,
                                  "tensor '%s' is in both %s and %s", name,
                                  c->paths[found], c->paths[i]);
      return NULL;
    }
    found = i;
  }
  if (found >= 0)
    return c->files[found];
  if (c->count == 1) /* the loader's own message names the file */
    return c->files[0];
  *status = moert_status_make(MOERT_NOT_FOUND,
                              "tensor '%s' is in none of the %d weight files "
                              "(%s, ...)",
                              name, c->count, c->paths[0]);
  return NULL;
}

static int hasTensor(const Checkpoint *c, const char *name) {
  for (int i = 0; i < c->count; ++i) {
    const moert_tensor_view_t *view;
    moert_status_t missing = moert_safetensors_find(c->files[i], name, &view);
    if (!missing)
      return 1;
    moert_status_free(missing);
  }
  return 0;
}

/* Copies `name` to `out`, replacing "{stage*K+J}" by K * stage + J: the
 * checkpoint layer of a pipeline stage's local layer J. */
static int substituteStage(const char *name, int stage, char *out,
                           size_t size) {
  const char *hole = strstr(name, "{stage*");
  if (!hole) {
    snprintf(out, size, "%s", name);
    return 0;
  }
  long k, j;
  int used = 0;
  if (sscanf(hole, "{stage*%ld+%ld}%n", &k, &j, &used) != 2 || used == 0)
    return -1;
  snprintf(out, size, "%.*s%ld%s", (int)(hole - name), name, k * stage + j,
           hole + used);
  return 0;
}

/* Fills the weight buffer from the checkpoint, tensor by tensor. */
static int loadWeights(const Manifest *m, const Checkpoint *ckpt, float *blob) {
  moert_status_t status = NULL;
  int rc = 0;
  for (const char *line = m->tensors; *line && !rc;) {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    char buffer[MAX_LINE];
    if (length >= sizeof(buffer)) {
      rc = error("manifest line too long");
      break;
    }
    memcpy(buffer, line, length);
    buffer[length] = '\0';
    line = end ? end + 1 : line + length;

    /* "stage S <entry>": only pipeline stage S reads it (the embedding on
     * the first stage, the final norm on the last). */
    int stage = moert_comm_coords().pp;
    if (!strncmp(buffer, "stage ", 6)) {
      int only = -1, used = 0;
      if (sscanf(buffer, "stage %d %n", &only, &used) != 1 || used == 0) {
        rc = error("malformed manifest line: %s", buffer);
        break;
      }
      if (only != stage)
        continue;
      memmove(buffer, buffer + used, strlen(buffer + used) + 1);
    }

    /* "tensor": the whole tensor. "tensor-ep": the stacked experts of this
     * rank's expert-parallel slice, experts [ep * count, (ep + 1) * count).
     * "tensor-slice tp|etp DIM": block `rank in group` of dimension DIM of
     * each tensor; the shape given is the block's. */
    /* "tensor-ep-slice etp DIM": both (this rank's experts, its etp block). */
    int bothSliced = !strncmp(buffer, "tensor-ep-slice ", 16);
    int expertSliced = bothSliced || !strncmp(buffer, "tensor-ep ", 10);
    int blockSliced = bothSliced || !strncmp(buffer, "tensor-slice ", 13);
    char *fields = buffer + (expertSliced ? 10 : 7);
    int sliceDim = 0, groupSize = 1, groupRank = 0;
    if (blockSliced) {
      char group[8];
      int used = 0;
      int start = bothSliced ? 16 : 13;
      if (sscanf(buffer + start, "%7s %d%n", group, &sliceDim, &used) != 2 ||
          (strcmp(group, "tp") && strcmp(group, "etp"))) {
        rc = error("malformed manifest line: %s", buffer);
        break;
      }
      moert_coords_t coords = moert_comm_coords();
      int isTp = !strcmp(group, "tp");
      groupSize = isTp ? m->plan.tp : m->plan.etp;
      groupRank = isTp ? coords.tp : coords.etp;
      fields = buffer + start + used;
    }
    int64_t offset, count;
    int rank, consumed;
    if (sscanf(fields, "%" SCNd64 " %" SCNd64 " %d%n", &offset, &count, &rank,
               &consumed) != 3 ||
        rank < 1 || rank > MOERT_MAX_RANK || sliceDim < 0 || sliceDim >= rank) {
      rc = error("malformed manifest line: %s", buffer);
      break;
    }
    int64_t shape[MOERT_MAX_RANK];
    int64_t elements = 1;
    char *cursor = fields + consumed;
    int64_t firstExpert = expertSliced ? moert_comm_coords().ep * count : 0;
    for (int i = 0; i < rank; ++i) {
      shape[i] = strtoll(cursor, &cursor, 10);
      elements *= shape[i];
    }
    while (*cursor == ' ')
      ++cursor;
    char stageName[MAX_LINE];
    if (substituteStage(cursor, stage, stageName, sizeof(stageName))) {
      rc = error("malformed manifest line: %s", buffer);
      break;
    }
    const char *name = stageName;
    const char *hole = strstr(name, "{}");
    if (offset < 0 || count < 1 || offset + elements * count > m->blob) {
      rc = error("manifest entry out of range: %s", buffer);
      break;
    }
    for (int64_t e = 0; e < count && !rc; ++e) {
      char tensorName[MAX_LINE];
      if (hole)
        snprintf(tensorName, sizeof(tensorName), "%.*s%" PRId64 "%s",
                 (int)(hole - name), name, firstExpert + e, hole + 2);
      else
        snprintf(tensorName, sizeof(tensorName), "%s", name);
      float *dst = blob + offset + e * elements;
      moert_safetensors_t *file = findShard(ckpt, tensorName, &status);
      if (!file) {
        rc = statusError(status);
        break;
      }
      if (blockSliced) {
        int64_t full[MOERT_MAX_RANK];
        memcpy(full, shape, sizeof(int64_t) * (size_t)rank);
        full[sliceDim] *= groupSize;
        int64_t begin = groupRank * shape[sliceDim];
        status = moert_safetensors_read_f32_slice(file, tensorName, rank, full,
                                                  sliceDim, begin,
                                                  begin + shape[sliceDim], dst);
      } else {
        status = moert_safetensors_read_f32(file, tensorName, rank, shape, dst);
      }
      if (status)
        rc = statusError(status);
    }
  }
  return rc;
}

/* Reads a prompt-length file: int64 or int32 [B], each in [1, S]. */
static int loadLengths(const Manifest *m, const char *path, int64_t *lengths) {
  moert_npy_array_t array;
  moert_status_t status = moert_npy_read(path, &array);
  if (status)
    return statusError(status);
  int rc = 0;
  if (array.rank != 1 || array.shape[0] != m->batch)
    rc = error("%s: prompt lengths must have shape [%" PRId64 "] (one per "
               "sequence), got %d dimension%s of %" PRId64 "%s",
               path, m->batch, array.rank, array.rank == 1 ? "" : "s",
               array.rank ? array.shape[0] : 0, array.rank > 1 ? ", ..." : "");
  else if (array.dtype != MOERT_DTYPE_I64 && array.dtype != MOERT_DTYPE_I32)
    rc = error("%s: prompt lengths must be int64 or int32, got %s", path,
               moert_dtype_name(array.dtype));
  for (int64_t b = 0; !rc && b < m->batch; ++b) {
    lengths[b] = array.dtype == MOERT_DTYPE_I64
                     ? ((const int64_t *)array.data)[b]
                     : ((const int32_t *)array.data)[b];
    if (lengths[b] < 1 || lengths[b] > m->seq)
      rc = error("%s: sequence %" PRId64 " has prompt length %" PRId64
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
    rc = error("%s: token ids have shape [%s]; this executable was compiled "
               "for [%" PRId64 ", %" PRId64 "] (moe-compile --batch/--seq-len)",
               path, shape, m->batch, m->seq);
  } else if (array.dtype != MOERT_DTYPE_I64 && array.dtype != MOERT_DTYPE_I32) {
    rc = error("%s: token ids must be int64 or int32, got %s", path,
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
        rc = error("%s: token id %" PRId64 " at [%" PRId64 ", %" PRId64
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

/* lm_head.weight [V, H] from the weights (model.embed_tokens.weight when
 * the config ties them), malloc'ed; NULL after an error (printed). */
static float *loadHead(const Manifest *m, const Checkpoint *ckpt) {
  moert_status_t status = NULL;
  const char *name = "lm_head.weight";
  if (m->tied && !hasTensor(ckpt, name))
    name = "model.embed_tokens.weight";
  moert_safetensors_t *file = findShard(ckpt, name, &status);
  if (!file) {
    statusError(status);
    return NULL;
  }
  int64_t headShape[2] = {m->vocab, m->hidden};
  float *head = malloc((size_t)(m->vocab * m->hidden) * sizeof(float));
  if (!head) {
    error("out of memory for lm_head");
    return NULL;
  }
  if ((status = moert_safetensors_read_f32(file, name, 2, headShape, head))) {
    statusError(status);
    free(head);
    return NULL;
  }
  return head;
}

/* out [rows, V] = hidden [rows, H] · headᵀ. */
static void computeLogits(const Manifest *m, const float *head,
                          const float *hidden, int64_t rows, float *out) {
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
    rc = error("out of memory for the logits");
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

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parseCount(const char *flag, const char *value, long min,
                      long *out) {
  char *end;
  errno = 0;
  long v = strtol(value, &end, 10);
  if (errno || *end || v < min)
    return error("%s expects an integer >= %ld, got '%s'", flag, min, value);
  *out = v;
  return 0;
}

/* What the command line asks for. */
typedef struct Options {
  const char *weights[MAX_SHARDS];
  int numWeights;
  const char *input, *output;
  long iters, warmup, threads;
  int stats, logits;
  /* Generation: tokens to generate (0: none), eos (-1: none). */
  long generate, eos;
  const char *lengths, *outputLogits;
} Options;

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
        return error("--weights expects a value");
      if (o->numWeights == MAX_SHARDS)
        return error("more than %d --weights files", MAX_SHARDS);
      o->weights[o->numWeights++] = argv[++i];
      continue;
    }
    const char **target = !strcmp(arg, "--input")           ? &o->input
                          : !strcmp(arg, "--output")        ? &o->output
                          : !strcmp(arg, "--lengths")       ? &o->lengths
                          : !strcmp(arg, "--output-logits") ? &o->outputLogits
                                                            : NULL;
    long *count = !strcmp(arg, "--iters")      ? &o->iters
                  : !strcmp(arg, "--warmup")   ? &o->warmup
                  : !strcmp(arg, "--threads")  ? &o->threads
                  : !strcmp(arg, "--generate") ? &o->generate
                  : !strcmp(arg, "--eos")      ? &o->eos
                                               : NULL;
    if (!target && !count) {
      usage(stderr, argv[0], m);
      return error("unknown argument '%s'", arg);
    }
    if (i + 1 >= argc)
      return error("%s expects a value", arg);
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
    return error("--weights, --input and --output are required");
  }
  if (!o->generate) {
    const char *needs = o->eos >= 0       ? "--eos"
                        : o->lengths      ? "--lengths"
                        : o->outputLogits ? "--output-logits"
                                          : NULL;
    if (needs)
      return error("%s applies to generation; add --generate N", needs);
    return 0;
  }
  if (!m->maxSeq)
    return error("--generate: this executable was compiled without "
                 "--max-seq-len, so it has no decode step; compile it with "
                 "moe-compile --max-seq-len M");
  if (m->seq + o->generate > m->maxSeq)
    return error("--generate %ld: the prompt (%" PRId64 " positions) and %ld "
                 "tokens need %" PRId64 " positions, but the executable's "
                 "cache holds %" PRId64 " (moe-compile --max-seq-len)",
                 o->generate, m->seq, o->generate, m->seq + o->generate,
                 m->maxSeq);
  if (o->eos >= m->vocab)
    return error("--eos %ld is outside the vocabulary [0, %" PRId64 ")", o->eos,
                 m->vocab);
  if (o->logits)
    return error("--logits writes the prefill's logits; with --generate use "
                 "--output-logits FILE");
  if (o->iters != 1)
    return error("--iters times the prefill pass; --generate prints its own "
                 "times (--warmup N generates N times untimed first)");
  return 0;
}

/* The world rank with these coordinates in the compiled layout (0 when the
 * program runs on one rank). */
static int worldRankAt(const moert_layout_t *layout, int pp, int dp, int tp) {
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
    rc = error("out of memory for the output");
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

/* Copies positions of `src` [L, B, S, heads, d] into `cache`
 * [L, B, M, heads, d] (dense): all S of them at [0, S) when `positions` is
 * NULL (the prompt), else the one of each sequence b at positions[b]. */
static void storeKv(const moert_memref5d_f32_t *src, float *cache, int64_t M,
                    const int64_t *positions) {
  const int64_t *n = src->sizes, *st = src->strides;
  const float *base = src->aligned + src->offset;
  int64_t row = n[3] * n[4];
  for (int64_t l = 0; l < n[0]; ++l)
    for (int64_t b = 0; b < n[1]; ++b)
      for (int64_t s = 0; s < n[2]; ++s) {
        int64_t at = positions ? positions[b] : s;
        float *dst = cache + ((l * n[1] + b) * M + at) * row;
        for (int64_t h = 0; h < n[3]; ++h)
          for (int64_t e = 0; e < n[4]; ++e)
            dst[h * n[4] + e] =
                base[l * st[0] + b * st[1] + s * st[2] + h * st[3] + e * st[4]];
      }
}

static void freeStep(moert_step_result_t *r) {
  moert_buffer_free(r->hidden.allocated);
  moert_buffer_free(r->keys.allocated);
  moert_buffer_free(r->values.allocated);
  memset(r, 0, sizeof(*r));
}

/* The state of a greedy generation (docs/Generation.md). Global rows are
 * sequences of the whole batch; this rank computes rows [first, first + Bl).
 */
typedef struct Generator {
  const Manifest *m;
  const Options *o;
  const moert_layout_t *layout;
  int64_t B, S, N, Bl, first;
  const int64_t *lengths; /* [B] prompt lengths */
  int64_t *next;          /* [B] the tokens just chosen */
  char *ended;            /* [B] the row has produced eos */
  float *lastLocal;       /* [Bl, H] this rank's rows' last hidden states */
  float *lastAll;         /* [B, H] all rows' (on the dp groups' roots) */
  float *head;            /* [V, H] lm_head (rank 0) */
  float *logits;          /* [B, V] (rank 0) */
  float *allLogits;       /* [B, N, V] for --output-logits (rank 0) */
  int64_t *out;           /* [B, S + N] (rank 0) */
} Generator;

/* Chooses step `step`'s tokens from the rows' last hidden states: rank 0
 * computes the logits and the argmax (the lowest id on a tie) and sends the
 * tokens to every rank. */
static void chooseTokens(Generator *g, int64_t step) {
  const Manifest *m = g->m;
  int64_t V = m->vocab;
  /* The last pipeline stage holds the hidden states: its dp group gathers
   * them, and its first rank passes them on to rank 0. */
  if (moert_comm_coords().pp == m->plan.pp - 1)
    moert_comm_gather_f32(g->lastLocal, g->lastAll, (long)(g->Bl * m->hidden),
                          MOERT_GROUP_DP);
  if (m->plan.pp > 1)
    moert_comm_move_f32(g->lastAll, (long)(g->B * m->hidden),
                        worldRankAt(g->layout, m->plan.pp - 1, 0, 0), 0);
  if (moert_comm_rank() == 0) {
    computeLogits(m, g->head, g->lastAll, g->B, g->logits);
    for (int64_t b = 0; b < g->B; ++b) {
      const float *row = g->logits + b * V;
      int64_t best = 0;
      for (int64_t v = 1; v < V; ++v)
        if (row[v] > row[best])
          best = v;
      g->next[b] = g->ended[b] ? g->o->eos : best;
      if (g->allLogits)
        memcpy(g->allLogits + (b * g->N + step) * V, row,
               (size_t)V * sizeof(float));
    }
  }
  moert_comm_broadcast_i64(g->next, (long)g->B, 0);
  for (int64_t b = 0; b < g->B; ++b) {
    if (g->out)
      g->out[b * (g->S + g->N) + g->lengths[b] + step] = g->next[b];
    if (g->o->eos >= 0 && g->next[b] == g->o->eos)
      g->ended[b] = 1;
  }
}

/* Takes a prefill's or a decode step's result: its keys and values into
 * the cache (a step's at each row's `positions`, the prompt's at [0, S) when
 * NULL), the hidden states of each row's last token (the prompt's at its
 * length, a step's only one) into lastLocal; frees the result. */
static void takeStep(Generator *g, moert_step_result_t *step, float *keys,
                     float *values, int64_t M, const int64_t *positions) {
  storeKv(&step->keys, keys, M, positions);
  storeKv(&step->values, values, M, positions);
  const moert_memref3d_f32_t *h = &step->hidden;
  int64_t H = g->m->hidden;
  for (int64_t b = 0; b < g->Bl; ++b) {
    int64_t s = positions ? 0 : g->lengths[g->first + b] - 1;
    for (int64_t e = 0; e < H; ++e)
      g->lastLocal[b * H + e] =
          h->aligned[h->offset + b * h->strides[0] + s * h->strides[1] +
                     e * h->strides[2]];
  }
  freeStep(step);
}

/* Prefill, then greedy decode steps; rank 0 writes the ids (and logits)
 * and prints the times unless `quiet` (a warm-up run). */
static int generate(const Manifest *m, const moert_layout_t *layout,
                    const Options *o, const moert_entry_points_t *entry,
                    const Checkpoint *ckpt, moert_memref1d_f32_t *blobRef,
                    const int64_t *lengths, int64_t *localIds,
                    const int64_t *allIds, int quiet) {
  Generator g = {0};
  g.m = m;
  g.layout = layout;
  g.o = o;
  g.B = m->batch;
  g.S = m->seq;
  g.N = o->generate;
  g.Bl = localBatch(m);
  g.first = moert_comm_coords().dp * g.Bl;
  int root = moert_comm_rank() == 0;
  int64_t H = m->hidden, V = m->vocab, M = m->maxSeq, width = g.S + g.N;
  g.lengths = lengths;
  g.next = calloc((size_t)g.B, sizeof(int64_t));
  g.ended = calloc((size_t)g.B, 1);
  g.lastLocal = malloc((size_t)(g.Bl * H) * sizeof(float));
  g.lastAll = malloc((size_t)(g.B * H) * sizeof(float));
  int rc = 0;
  if (!g.next || !g.ended || !g.lastLocal || !g.lastAll)
    rc = error("out of memory for generation");
  if (!rc && root) {
    g.head = loadHead(m, ckpt);
    g.logits = malloc((size_t)(g.B * V) * sizeof(float));
    g.out = malloc((size_t)(g.B * width) * sizeof(int64_t));
    if (o->outputLogits)
      g.allLogits = malloc((size_t)(g.B * g.N * V) * sizeof(float));
    if (!g.head)
      rc = 1;
    else if (!g.logits || !g.out || (o->outputLogits && !g.allLogits))
      rc = error("out of memory for generation");
  }
  if (!rc && root) {
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t s = 0; s < width; ++s)
        g.out[b * width + s] = s < lengths[b] ? allIds[b * g.S + s] : -1;
    if (g.allLogits)
      for (int64_t i = 0; i < g.B * g.N * V; ++i)
        g.allLogits[i] = NAN;
  }

  moert_step_result_t step = {0};
  float *keys = NULL, *values = NULL;
  int64_t *stepIds = moert_buffer_alloc((size_t)g.Bl * sizeof(int64_t));
  int64_t *positions = moert_buffer_alloc((size_t)g.Bl * sizeof(int64_t));
  if (!rc && (!stepIds || !positions))
    rc = error("out of memory for generation");
  double prefillTime = 0, decodeTime = 0;
  int64_t steps = 0;
  if (!rc) {
    moert_memref2d_i64_t idsRef = {
        localIds, localIds, 0, {g.Bl, g.S}, {g.S, 1}};
    moert_comm_barrier();
    double start = now();
    entry->prefill(&step, &idsRef, blobRef);
    /* The cache, [L, Bl, M, kv heads, d] on this rank, holds the prompt. */
    const int64_t *kv = step.keys.sizes;
    size_t cacheBytes = (size_t)(kv[0] * kv[1] * M * kv[3] * kv[4]) * 4;
    keys = moert_buffer_alloc(cacheBytes);
    values = moert_buffer_alloc(cacheBytes);
    if (!keys || !values)
      rc = error("out of memory for the key/value cache (%zu bytes)",
                 2 * cacheBytes);
    int64_t cacheShape[5] = {kv[0], kv[1], M, kv[3], kv[4]};
    int64_t cacheStrides[5] = {kv[1] * M * kv[3] * kv[4], M * kv[3] * kv[4],
                               kv[3] * kv[4], kv[4], 1};
    if (!rc) {
      memset(keys, 0, cacheBytes);
      memset(values, 0, cacheBytes);
      takeStep(&g, &step, keys, values, M, NULL);
      chooseTokens(&g, 0);
    }
    freeStep(&step);
    moert_comm_barrier();
    prefillTime = now() - start;

    moert_memref5d_f32_t keysRef = {keys, keys, 0, {0}, {0}};
    moert_memref5d_f32_t valuesRef = {values, values, 0, {0}, {0}};
    memcpy(keysRef.sizes, cacheShape, sizeof(cacheShape));
    memcpy(keysRef.strides, cacheStrides, sizeof(cacheStrides));
    memcpy(valuesRef.sizes, cacheShape, sizeof(cacheShape));
    memcpy(valuesRef.strides, cacheStrides, sizeof(cacheStrides));
    moert_memref2d_i64_t stepIdsRef = {stepIds, stepIds, 0, {g.Bl, 1}, {1, 1}};
    moert_memref1d_i64_t positionsRef = {positions, positions, 0, {g.Bl}, {1}};
    start = now();
    for (int64_t t = 1; !rc && t < g.N; ++t) {
      int allEnded = 1;
      for (int64_t b = 0; b < g.B; ++b)
        allEnded &= g.ended[b];
      if (allEnded)
        break;
      for (int64_t b = 0; b < g.Bl; ++b) {
        stepIds[b] = g.next[g.first + b];
        positions[b] = lengths[g.first + b] + t - 1;
      }
      entry->decode(&step, &stepIdsRef, &positionsRef, &keysRef, &valuesRef,
                    blobRef);
      takeStep(&g, &step, keys, values, M, positions);
      chooseTokens(&g, t);
      ++steps;
    }
    moert_comm_barrier();
    decodeTime = now() - start;
  }
  /* A row that ended holds eos to the end, also past an early stop. */
  if (!rc && root && o->eos >= 0)
    for (int64_t b = 0; b < g.B; ++b) {
      int seen = 0;
      for (int64_t s = lengths[b]; s < lengths[b] + g.N; ++s) {
        if (seen)
          g.out[b * width + s] = o->eos;
        seen |= g.out[b * width + s] == o->eos;
      }
    }
  prefillTime = moert_comm_max_f64(prefillTime);
  decodeTime = moert_comm_max_f64(decodeTime);
  if (!rc && root && !quiet) {
    int64_t shape[2] = {g.B, width};
    moert_status_t status =
        moert_npy_write(o->output, MOERT_DTYPE_I64, 2, shape, g.out);
    if (!status && o->outputLogits) {
      int64_t logitsShape[3] = {g.B, g.N, V};
      status =
          moert_npy_write_f32(o->outputLogits, 3, logitsShape, g.allLogits);
    }
    if (status)
      rc = statusError(status);
  }
  if (!rc && root && !quiet) {
    printf("%s: batch %" PRId64 ", prompt %" PRId64 ", %d rank%s: prefill "
           "%.3f ms (%.1f tokens/s)\n",
           m->arch, g.B, g.S, moert_comm_size(),
           moert_comm_size() == 1 ? "" : "s", prefillTime * 1e3,
           (double)(g.B * g.S) / prefillTime);
    if (steps > 0)
      printf("%s: decode %.3f ms per token, %.1f tokens/s (%" PRId64
             " steps of %" PRId64 " sequences)\n",
             m->arch, decodeTime * 1e3 / (double)steps,
             (double)(steps * g.B) / decodeTime, steps, g.B);
  }
  if (!rc && o->stats && !quiet) {
    fflush(stdout);
    moert_comm_print_stats(stdout);
  }
  freeStep(&step);
  moert_buffer_free(keys);
  moert_buffer_free(values);
  moert_buffer_free(stepIds);
  moert_buffer_free(positions);
  free(g.next);
  free(g.ended);
  free(g.lastLocal);
  free(g.lastAll);
  free(g.head);
  free(g.logits);
  free(g.allLogits);
  free(g.out);
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
    return error("the executable defines neither forward nor prefill and "
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
    return error("out of memory for %" PRId64 " weights", m.blob);
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
  if (!rc && o.generate) {
    for (long w = 0; !rc && w < o.warmup; ++w)
      rc = generate(&m, layout, &o, entry, &ckpt, &blobRef, lengths, ids,
                    allIds, 1);
    if (!rc)
      rc = generate(&m, layout, &o, entry, &ckpt, &blobRef, lengths, ids,
                    allIds, 0);
    closeCheckpoint(&ckpt);
    moert_buffer_free(blob);
    moert_buffer_free(ids);
    free(allIds);
    free(lengths);
    return rc;
  }
  moert_step_result_t result = {0};
  double elapsed = 0;
  for (long i = 0; !rc && i < o.warmup + o.iters; ++i) {
    freeStep(&result);
    /* A pass starts on every rank together and ends when the last rank is
     * done: without the barriers a pipeline's first stage would start the
     * next pass while the last one finishes this one, and the time would
     * be throughput, not the latency of a pass. */
    moert_comm_barrier();
    double start = now();
    if (entry->forward)
      entry->forward(&result.hidden, &idsRef, &blobRef);
    else
      entry->prefill(&result, &idsRef, &blobRef);
    moert_comm_barrier();
    if (i >= o.warmup)
      elapsed += now() - start;
  }
  if (!rc) {
    rc = writeOutput(&m, layout, &o, &ckpt, &result.hidden);
    /* The ranks' clocks measured the same barrier-to-barrier passes;
     * report the largest. */
    elapsed = moert_comm_max_f64(elapsed);
    if (!rc && moert_comm_rank() == 0)
      printf("%s: batch %" PRId64 ", seq %" PRId64 ", %d rank%s: %.3f ms per "
             "forward pass (%ld iterations)\n",
             m.arch, m.batch, m.seq, moert_comm_size(),
             moert_comm_size() == 1 ? "" : "s",
             elapsed * 1e3 / (double)o.iters, o.iters);
    if (!rc && o.stats) {
      fflush(stdout);
      moert_comm_print_stats(stdout);
    }
  }
  freeStep(&result);
  closeCheckpoint(&ckpt);
  moert_buffer_free(blob);
  moert_buffer_free(ids);
  free(allIds);
  free(lengths);
  return rc;
}
