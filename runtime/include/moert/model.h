/*===- model.h - the driver of a compiled model executable --------*- C -*-===*
 *
 * An executable built by `moe-compile` is the compiled model (an object that
 * defines `_mlir_ciface_forward`, or with --max-seq-len `_mlir_ciface_prefill`
 * and `_mlir_ciface_decode`, and the `moe_model_manifest` string) linked
 * with libmoert_main.a, whose `main` calls moert_model_run. That function
 * parses the command line, fills the weight buffer from a safetensors file
 * as the manifest says, runs the forward pass (or generates: prefill, then
 * greedy decode steps; docs/Generation.md) and writes the result.
 *
 * Manifest (text, one item per line; docs/Passes.md,
 * convert-moe-manifest-to-llvm):
 *   moe-model 1
 *   gemm <mode>                                 (CUDA, not f32 only)
 *   plan <dp> <tp> <ep> <etp> <pp>              (partitioned programs only)
 *   rank <r> coords ... colors ...              (one per rank; comm.h)
 *   arch <name>           batch <B>    seq <S>    hidden <H>
 *   vocab <V>             blob <number of f32 elements>
 *   max-seq <M>                                 (generation builds only)
 *   tensor <offset> <count> <rank> <d0> ... <name>
 *   tensor-ep <offset> <count> <rank> <d0> ... <name>
 *   tensor-slice tp|etp <dim> <offset> <count> <rank> <d0> ... <name>
 *   tensor-ep-slice etp <dim> <offset> <count> <rank> <d0> ... <name>
 * A tensor with a `{}` in its name is `count` tensors of shape d0.. (the `{}`
 * replaced by the expert index) stored one after the other from `offset`.
 * `tensor-ep`: this rank's experts, `ep_rank * count ..`; `tensor-slice`:
 * block `group_rank` of dimension `dim` of each tensor (d0.. is the block);
 * `tensor-ep-slice`: both.
 * `batch` is the global batch; each rank computes batch / dp sequences.
 *
 *===----------------------------------------------------------------------===*/

#ifndef MOERT_MODEL_H
#define MOERT_MODEL_H

#include "moert/memref.h"
#include "moert/moert.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The compiled entry point: result [B, S, H] = forward(ids [B, S], blob). */
typedef void (*moert_forward_fn)(moert_memref3d_f32_t *result,
                                 moert_memref2d_i64_t *ids,
                                 moert_memref1d_f32_t *blob);

/* The results of prefill and of a decode step: the final-normed hidden
 * states [B, S, H] (S = 1 for a step) and every layer's keys and values
 * [L, B, S, kv heads, head dim] (this rank's sequences and heads). */
typedef struct moert_step_result {
  moert_memref3d_f32_t hidden;
  moert_memref5d_f32_t keys;
  moert_memref5d_f32_t values;
} moert_step_result_t;

/* result = prefill(ids [B, S], blob). */
typedef void (*moert_prefill_fn)(moert_step_result_t *result,
                                 moert_memref2d_i64_t *ids,
                                 moert_memref1d_f32_t *blob);

/* result = decode(ids [B, 1], positions [B], key cache, value cache
 * [L, B, M, kv heads, head dim], blob): one token per sequence at its
 * position; the caches hold positions [0, position) of each sequence. */
typedef void (*moert_decode_fn)(moert_step_result_t *result,
                                moert_memref2d_i64_t *ids,
                                moert_memref1d_i64_t *positions,
                                moert_memref5d_f32_t *keys,
                                moert_memref5d_f32_t *values,
                                moert_memref1d_f32_t *blob);

/* The compiled entry points: `forward`, or `prefill` and `decode` (NULL when
 * the object does not define them). */
typedef struct moert_entry_points {
  moert_forward_fn forward;
  moert_prefill_fn prefill;
  moert_decode_fn decode;
} moert_entry_points_t;

/* Buffers shared with compiled code: the weights, the token ids, and the
 * result the forward function allocates (freed with moert_buffer_free).
 * Host memory in the CPU runtime (NULL when out of memory); CUDA managed
 * memory in libmoert_cuda, which the device and the host both reach (a
 * failed allocation aborts every rank with the driver's message). */
MOERT_API void *moert_buffer_alloc(size_t bytes);
MOERT_API void moert_buffer_free(void *buffer);

/* How moert_sgemm computes: "f32" (every runtime), or on libmoert_cuda
 * "tf32", "bf16" or "f16" (tensor cores on inputs rounded to that type,
 * f32 accumulation and output). An error names a mode the runtime lacks. */
MOERT_API moert_status_t moert_set_gemm_mode(const char *mode);

/* Runs the executable's command line; returns the process exit code (0 on
 * success, 1 after printing an error). */
MOERT_API int moert_model_run(int argc, char **argv, const char *manifest,
                              const moert_entry_points_t *entry);
/* moert_model_run of a model with only `forward`. */
MOERT_API int moert_model_main(int argc, char **argv, const char *manifest,
                               moert_forward_fn forward);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MOERT_MODEL_H */
