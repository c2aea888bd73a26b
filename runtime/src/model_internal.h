/*===- model_internal.h - what the executable's driver files share -*- C -*-===*
 *
 * Not installed and not part of the ABI: the manifest, the command line and
 * the checkpoint as model_main.c reads them, and what generate.c (the
 * --generate loop) uses of them.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_MODEL_INTERNAL_H
#define MOERT_MODEL_INTERNAL_H

#include "moert/comm.h"
#include "moert/model.h"
#include "moert/safetensors.h"
#include "moert/trace.h"

#include <stdint.h>

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
static inline int64_t localBatch(const Manifest *m) {
  return m->batch / m->plan.dp;
}

/* The weights: one safetensors file, or the shards of a sharded checkpoint
 * (--weights given once per shard); each tensor must be in exactly one. */
#define MAX_SHARDS 256
typedef struct Checkpoint {
  moert_safetensors_t *files[MAX_SHARDS];
  const char *paths[MAX_SHARDS];
  int count;
} Checkpoint;

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
  /* --trace: the Chrome trace file rank 0 writes (NULL: none). */
  const char *trace;
} Options;

/* Prints "error: ..." (under mpiexec, aborts every rank with it); returns 1. */
int modelError(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* modelError with the status's message; frees the status. */
int statusError(moert_status_t status);
/* Opens the --weights files (weights.c); errors are printed. */
int openCheckpoint(Checkpoint *c, const char **paths, int count);
void closeCheckpoint(Checkpoint *c);
/* Reads every tensor of the manifest into `blob` (weights.c). */
int loadWeights(const Manifest *m, const Checkpoint *ckpt, float *blob);
/* lm_head.weight [V, H] (or the tied embedding), malloc'ed; NULL after an
 * error (printed). */
float *loadHead(const Manifest *m, const Checkpoint *ckpt);
/* out [rows, V] = hidden [rows, H] · headᵀ. */
void computeLogits(const Manifest *m, const float *head, const float *hidden,
                   int64_t rows, float *out);
/* The world rank with these coordinates in the compiled layout. */
int worldRankAt(const moert_layout_t *layout, int pp, int dp, int tp);
/* A monotonic clock, in seconds (the trace's). */
static inline double now(void) { return moert_trace_now(); }
/* Frees a prefill's or a decode step's result buffers. */
void freeStep(moert_step_result_t *r);

/* Generates --generate tokens after each prompt (generate.c); `quiet` for a
 * warm-up run (no output, no times). */
int generateTokens(const Manifest *m, const moert_layout_t *layout,
                   const Options *o, const moert_entry_points_t *entry,
                   const Checkpoint *ckpt, moert_memref1d_f32_t *blobRef,
                   const int64_t *lengths, int64_t *localIds,
                   const int64_t *allIds, int quiet);

#endif /* MOERT_MODEL_INTERNAL_H */
