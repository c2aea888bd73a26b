/*===- main_stub.c - main() of a compiled model executable ----------------===*
 *
 * Built into libmoert_main.a; the symbols it names come from the object
 * moe-compile emits.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/model.h"

extern const char moe_model_manifest[];
/* A model defines forward, or prefill and decode (moe-compile
 * --max-seq-len); the others stay NULL. */
void _mlir_ciface_forward(moert_memref3d_f32_t *result,
                          moert_memref2d_i64_t *ids, moert_memref1d_f32_t *blob)
    __attribute__((weak));
void _mlir_ciface_prefill(moert_step_result_t *result,
                          moert_memref2d_i64_t *ids, moert_memref1d_f32_t *blob)
    __attribute__((weak));
void _mlir_ciface_decode(moert_step_result_t *result, moert_memref2d_i64_t *ids,
                         moert_memref1d_i64_t *positions,
                         moert_memref5d_f32_t *keys,
                         moert_memref5d_f32_t *values,
                         moert_memref1d_f32_t *blob) __attribute__((weak));

int main(int argc, char **argv) {
  moert_entry_points_t entry = {_mlir_ciface_forward, _mlir_ciface_prefill,
                                _mlir_ciface_decode};
  return moert_model_run(argc, argv, moe_model_manifest, &entry);
}
