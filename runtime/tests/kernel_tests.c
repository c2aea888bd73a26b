/*===- kernel_tests.c - tests of the entry points compiled code calls ----===*
 *
 * moert_sgemm (its kernels, BLAS and strided fallback paths) and
 * memrefCopy.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/comm.h"
#include "moert/memref.h"
#include "moert/model.h"
#include "test_harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

void _mlir_ciface_moert_sgemm(moert_memref2d_f32_t *a, moert_memref2d_f32_t *b,
                              moert_memref2d_f32_t *c, int32_t transposeA,
                              int32_t transposeB, int32_t accumulate);

typedef struct UnrankedMemRef {
  int64_t rank;
  void *descriptor;
} UnrankedMemRef;
void memrefCopy(int64_t elemSize, UnrankedMemRef *src, UnrankedMemRef *dst);

static float at(const moert_memref2d_f32_t *m, int64_t i, int64_t j) {
  return m->aligned[m->offset + i * m->strides[0] + j * m->strides[1]];
}

/* C += op(A) op(B) against a naive loop, for one operand layout. */
static void checkGemm(int transposeA, int transposeB, int columnMajorB,
                      int stridedA, int accumulate) {
  enum { M = 5, N = 7, K = 6 };
  float aData[2 * M * K], bData[N * K], cData[M * N], expect[M * N];
  for (int i = 0; i < 2 * M * K; ++i)
    aData[i] = (float)((i * 7) % 11) - 5.0f;
  for (int i = 0; i < N * K; ++i)
    bData[i] = (float)((i * 5) % 13) * 0.25f - 1.0f;
  for (int i = 0; i < M * N; ++i) {
    cData[i] = (float)i * 0.5f;
    expect[i] = accumulate ? cData[i] : 0.0f;
  }

  /* A is [M, K] (or [K, M] transposed); stridedA spreads its columns 2
   * apart, which no BLAS layout expresses, to exercise the fallback. */
  int64_t aRows = transposeA ? K : M, aCols = transposeA ? M : K;
  int64_t aColStride = stridedA ? 2 : 1;
  moert_memref2d_f32_t a = {
      aData, aData, 0, {aRows, aCols}, {aCols * aColStride, aColStride}};
  int64_t bRows = transposeB ? N : K, bCols = transposeB ? K : N;
  moert_memref2d_f32_t b = {
      bData,
      bData,
      0,
      {bRows, bCols},
      {columnMajorB ? 1 : bCols, columnMajorB ? bRows : 1}};
  moert_memref2d_f32_t c = {cData, cData, 0, {M, N}, {N, 1}};
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j)
      for (int p = 0; p < K; ++p)
        expect[i * N + j] += (transposeA ? at(&a, p, i) : at(&a, i, p)) *
                             (transposeB ? at(&b, j, p) : at(&b, p, j));
  _mlir_ciface_moert_sgemm(&a, &b, &c, transposeA, transposeB, accumulate);
  for (int i = 0; i < M * N; ++i)
    EXPECT(fabsf(cData[i] - expect[i]) <= 1e-4f * (1.0f + fabsf(expect[i])));
}

static void testSgemmNN(void) { checkGemm(0, 0, 0, 0, 1); }
static void testSgemmNT(void) { checkGemm(0, 1, 0, 0, 1); }
static void testSgemmTN(void) { checkGemm(1, 0, 0, 0, 1); }
static void testSgemmColumnMajorOperand(void) { checkGemm(0, 1, 1, 0, 1); }
static void testSgemmStridedFallback(void) { checkGemm(0, 1, 0, 1, 1); }
static void testSgemmOverwrite(void) { checkGemm(0, 1, 0, 0, 0); }
static void testSgemmOverwriteFallback(void) { checkGemm(0, 1, 0, 1, 0); }

/* The runtime's own paths (cpu_gemm.h) on shapes that reach them all: the
 * skinny kernels (m <= 16) with B as a weight [n, k] and as [k, n], their
 * vector loops and tails (k not a multiple of 8, n not of 4), work split
 * over the threads (m n k >= 2^16), and the OpenBLAS column blocks (m > 16);
 * accumulating and overwriting. */
static void testSgemmRuntimePaths(void) {
  enum { MaxM = 24, N = 129, K = 70 };
  static float aData[MaxM * K], bData[N * K], cData[MaxM * N];
  static double expect[MaxM * N];
  for (int i = 0; i < MaxM * K; ++i)
    aData[i] = (float)((i * 7) % 23) * 0.125f - 1.25f;
  for (int i = 0; i < N * K; ++i)
    bData[i] = (float)((i * 5) % 29) * 0.0625f - 0.75f;
  const int ms[] = {1, 2, 3, 16, 17, 24};
  for (size_t mi = 0; mi < sizeof(ms) / sizeof(ms[0]); ++mi)
    for (int transposeB = 0; transposeB < 2; ++transposeB)
      for (int accumulate = 0; accumulate < 2; ++accumulate) {
        int m = ms[mi];
        for (int i = 0; i < m * N; ++i) {
          cData[i] = (float)(i % 9) - 4.0f;
          expect[i] = accumulate ? cData[i] : 0.0;
        }
        moert_memref2d_f32_t a = {aData, aData, 0, {m, K}, {K, 1}};
        moert_memref2d_f32_t b = {bData,
                                  bData,
                                  0,
                                  {transposeB ? N : K, transposeB ? K : N},
                                  {transposeB ? K : N, 1}};
        moert_memref2d_f32_t c = {cData, cData, 0, {m, N}, {N, 1}};
        for (int i = 0; i < m; ++i)
          for (int j = 0; j < N; ++j)
            for (int p = 0; p < K; ++p)
              expect[i * N + j] +=
                  (double)aData[i * K + p] *
                  (transposeB ? bData[j * K + p] : bData[p * N + j]);
        _mlir_ciface_moert_sgemm(&a, &b, &c, 0, transposeB, accumulate);
        int ok = 1;
        for (int i = 0; i < m * N; ++i)
          ok &= fabs(cData[i] - expect[i]) <= 1e-4 * (1.0 + fabs(expect[i]));
        EXPECT(ok);
      }
}

static void testSgemmEmptyIsNoOp(void) {
  float c[4] = {1, 2, 3, 4};
  float dummy[1] = {0};
  moert_memref2d_f32_t a = {dummy, dummy, 0, {2, 0}, {0, 1}};
  moert_memref2d_f32_t b = {dummy, dummy, 0, {0, 2}, {2, 1}};
  moert_memref2d_f32_t cm = {c, c, 0, {2, 2}, {2, 1}};
  _mlir_ciface_moert_sgemm(&a, &b, &cm, 0, 0, 1);
  EXPECT(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
}

static void testMemrefCopyStrided(void) {
  /* Copy the 2x3 block at offset 1 of a 3x4 row-major matrix into a
   * column-major 2x3 buffer. */
  float src[12], dst[6] = {0};
  for (int i = 0; i < 12; ++i)
    src[i] = (float)i;
  moert_memref2d_f32_t s = {src, src, 1, {2, 3}, {4, 1}};
  moert_memref2d_f32_t d = {dst, dst, 0, {2, 3}, {1, 2}};
  UnrankedMemRef us = {2, &s}, ud = {2, &d};
  memrefCopy(sizeof(float), &us, &ud);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT(dst[i + 2 * j] == src[1 + 4 * i + j]);
}

/* The layout comes from the manifest's plan and rank lines (the compiler
 * computes it); a missing, repeated or malformed rank line is an error. */
static void testLayoutParse(void) {
  moert_layout_t layout;
  EXPECT_OK(moert_layout_parse("moe-model 1\narch x\n", &layout));
  EXPECT(layout.world == 1 && layout.ranks == NULL && layout.plan.dp == 1);
  moert_layout_free(&layout);
  const char *dp2 = "moe-model 1\nplan 2 1 1 1 1\n"
                    "rank 0 coords 0 0 0 0 0 0 0 colors 0 0 0 0 0 0\n"
                    "rank 1 coords 0 1 0 1 0 0 0 colors 0 0 1 1 1 1\n"
                    "tensor 0 1 1 4 w\n";
  EXPECT_OK(moert_layout_parse(dp2, &layout));
  EXPECT(layout.world == 2 && layout.plan.dp == 2);
  EXPECT(layout.ranks[1].coords.dp == 1 &&
         layout.ranks[1].coords.ep_group == 1);
  EXPECT(layout.ranks[1].colors[MOERT_GROUP_DP] == 0 &&
         layout.ranks[1].colors[MOERT_GROUP_TP] == 1);
  moert_layout_free(&layout);
  EXPECT_STATUS(moert_layout_parse("plan 2 1 1 1 1\nrank 0 coords 0 0 0 0 0 0 "
                                   "0 colors 0 0 0 0 0 0\n",
                                   &layout),
                MOERT_INVALID_ARGUMENT, "has no line for rank 1");
  EXPECT_STATUS(
      moert_layout_parse("plan 2 1 1 1 1\nrank 0 coords 0 0 0\n", &layout),
      MOERT_INVALID_ARGUMENT, "malformed or repeated layout line");
  EXPECT_STATUS(moert_layout_parse("plan 1 1 1 1 1\nrank 3 coords 0 0 0 0 0 "
                                   "0 0 colors 0 0 0 0 0 0\n",
                                   &layout),
                MOERT_INVALID_ARGUMENT, "malformed or repeated layout line");
  EXPECT_STATUS(moert_layout_parse("plan 2 1 3 1 1\n", &layout),
                MOERT_INVALID_ARGUMENT, "ep=3 does not divide dp*tp=2");
}

static void testPlanValidate(void) {
  moert_plan_t ok = {2, 2, 2, 2, 1};
  EXPECT_OK(moert_plan_validate(&ok));
  moert_plan_t tooMany = {2, 2, 4, 2, 1};
  EXPECT_STATUS(moert_plan_validate(&tooMany), MOERT_INVALID_ARGUMENT,
                "ep*etp=8 does not divide dp*tp=4");
  moert_plan_t badEp = {2, 1, 3, 1, 1};
  EXPECT_STATUS(moert_plan_validate(&badEp), MOERT_INVALID_ARGUMENT,
                "ep=3 does not divide dp*tp=2");
  moert_plan_t badEtp = {1, 2, 1, 4, 1};
  EXPECT_STATUS(moert_plan_validate(&badEtp), MOERT_INVALID_ARGUMENT,
                "etp=4 does not divide tp=2");
  moert_plan_t zero = {0, 1, 1, 1, 1};
  EXPECT_STATUS(moert_plan_validate(&zero), MOERT_INVALID_ARGUMENT, "dp=0");
}

/* The CPU runtime computes products in f32 only; other modes belong to the
 * CUDA runtime and are an error naming them. */
static void testGemmModeCpu(void) {
  EXPECT_OK(moert_set_gemm_mode("f32"));
  EXPECT_STATUS(moert_set_gemm_mode("bf16"), MOERT_INVALID_ARGUMENT,
                "computes matrix products in f32, not 'bf16'");
}

/* Without MPI (a one-rank plan outside mpiexec) every group has one member:
 * the collectives copy, and they are counted. */
static void testSingleRankCollectives(void) {
  moert_layout_t one = {{1, 1, 1, 1, 1}, 1, NULL};
  EXPECT_OK(moert_comm_init(&one, NULL, NULL));
  float in[4] = {1, 2, 3, 4}, out[4] = {0};
  moert_memref1d_f32_t mi = {in, in, 0, {4}, {1}}, mo = {out, out, 0, {4}, {1}};
  long long before = moert_comm_bytes(MOERT_ALL_TO_ALL, MOERT_GROUP_EP);
  _mlir_ciface_moert_all_to_all_f32(&mi, &mo, MOERT_GROUP_EP);
  EXPECT(out[0] == 1 && out[3] == 4);
  EXPECT(moert_comm_bytes(MOERT_ALL_TO_ALL, MOERT_GROUP_EP) == before);
  EXPECT(moert_comm_calls(MOERT_ALL_TO_ALL, MOERT_GROUP_EP) >= 1);
  out[0] = 0;
  _mlir_ciface_moert_all_gather_f32(&mi, &mo, MOERT_GROUP_DP);
  EXPECT(out[0] == 1);
  EXPECT(moert_group_rank(MOERT_GROUP_DP) == 0);
  EXPECT(moert_comm_rank() == 0 && moert_comm_size() == 1);
  moert_comm_finalize();
}

const TestCase kKernelTests[] = {
    {"LayoutParse", testLayoutParse},
    {"PlanValidate", testPlanValidate},
    {"SingleRankCollectives", testSingleRankCollectives},
    {"GemmModeCpu", testGemmModeCpu},
    {"SgemmNN", testSgemmNN},
    {"SgemmNT", testSgemmNT},
    {"SgemmTN", testSgemmTN},
    {"SgemmColumnMajorOperand", testSgemmColumnMajorOperand},
    {"SgemmStridedFallback", testSgemmStridedFallback},
    {"SgemmOverwrite", testSgemmOverwrite},
    {"SgemmOverwriteFallback", testSgemmOverwriteFallback},
    {"SgemmRuntimePaths", testSgemmRuntimePaths},
    {"SgemmEmptyIsNoOp", testSgemmEmptyIsNoOp},
    {"MemrefCopyStrided", testMemrefCopyStrided},
};
const size_t kNumKernelTests = sizeof(kKernelTests) / sizeof(kKernelTests[0]);
