/*===- main_stub.c - main() of a compiled model executable ----------------===*
 *
 * Built into libmoert_main.a; the symbols it names come from the object
 * moe-compile emits.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/model.h"

extern const char moe_model_manifest[];
void _mlir_ciface_forward(moert_memref3d_f32_t *result,
                          moert_memref2d_i64_t *ids,
                          moert_memref1d_f32_t *blob);

int main(int argc, char **argv) {
  return moert_model_main(argc, argv, moe_model_manifest, _mlir_ciface_forward);
}
