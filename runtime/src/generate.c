/*===- generate.c - an executable's --generate: prefill, then decode -------===*
 *
 * Greedy generation with the compiled `prefill` and `decode` entry points
 * and the key/value cache this file keeps (docs/Generation.md).
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "model_internal.h"

#include "moert/npy.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int generateTokens(const Manifest *m, const moert_layout_t *layout,
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
    rc = modelError("out of memory for generation");
  if (!rc && root) {
    g.head = loadHead(m, ckpt);
    g.logits = malloc((size_t)(g.B * V) * sizeof(float));
    g.out = malloc((size_t)(g.B * width) * sizeof(int64_t));
    if (o->outputLogits)
      g.allLogits = malloc((size_t)(g.B * g.N * V) * sizeof(float));
    if (!g.head)
      rc = 1;
    else if (!g.logits || !g.out || (o->outputLogits && !g.allLogits))
      rc = modelError("out of memory for generation");
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
    rc = modelError("out of memory for generation");
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
      rc = modelError("out of memory for the key/value cache (%zu bytes)",
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
