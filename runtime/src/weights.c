/*===- weights.c - a checkpoint's tensors into the executable's buffer ----===*
 *
 * Opens the --weights safetensors files (one, or the shards of a sharded
 * checkpoint), finds each tensor of the weight manifest in them, and reads
 * it, converted to f32, into its place in the one buffer compiled code
 * takes (a pipeline stage's layers by the stage's names); also the lm_head
 * the logits and the --generate loop use.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/comm.h"
#include "moert/safetensors.h"

#include "model_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 1024

void closeCheckpoint(Checkpoint *c) {
  for (int i = 0; i < c->count; ++i)
    moert_safetensors_close(c->files[i]);
  c->count = 0;
}

int openCheckpoint(Checkpoint *c, const char **paths, int count) {
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
int loadWeights(const Manifest *m, const Checkpoint *ckpt, float *blob) {
  moert_status_t status = NULL;
  int rc = 0;
  for (const char *line = m->tensors; *line && !rc;) {
    const char *end = strchr(line, '\n');
    size_t length = end ? (size_t)(end - line) : strlen(line);
    char buffer[MAX_LINE];
    if (length >= sizeof(buffer)) {
      rc = modelError("manifest line too long");
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
        rc = modelError("malformed manifest line: %s", buffer);
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
        rc = modelError("malformed manifest line: %s", buffer);
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
      rc = modelError("malformed manifest line: %s", buffer);
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
      rc = modelError("malformed manifest line: %s", buffer);
      break;
    }
    const char *name = stageName;
    const char *hole = strstr(name, "{}");
    if (offset < 0 || count < 1 || offset + elements * count > m->blob) {
      rc = modelError("manifest entry out of range: %s", buffer);
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
/* lm_head.weight [V, H] from the weights (model.embed_tokens.weight when
 * the config ties them), malloc'ed; NULL after an error (printed). */
float *loadHead(const Manifest *m, const Checkpoint *ckpt) {
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
    modelError("out of memory for lm_head");
    return NULL;
  }
  if ((status = moert_safetensors_read_f32(file, name, 2, headShape, head))) {
    statusError(status);
    free(head);
    return NULL;
  }
  return head;
}
