/*===- cpu_gemm.c - matrix products over the runtime's threads ------------===*
 *
 * See cpu_gemm.h. The work is the columns of C, cut into one contiguous
 * range per thread. The skinny kernel for B [n, k] takes its rows of B four
 * at a time and runs them against every row of A while they are in cache;
 * the one for B [k, n] adds scaled rows of B, vectorized along n. The
 * AVX2/FMA versions are chosen at run time when the CPU has them; portable
 * loops otherwise.
 *
 * The threads: workers that wait for a generation counter to change, first
 * spinning (a decode step calls this hundreds of times, microseconds apart),
 * then sleeping on a condition variable.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "cpu_gemm.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/*===----------------------------------------------------------------------===*
 * Kernels: rows [n0, n1) of B against all m rows of A.
 *===----------------------------------------------------------------------===*/

typedef struct Product Product;
typedef void (*RowsFn)(const Product *, int64_t, int64_t);

struct Product {
  int64_t m, n, k, lda, ldb, ldc;
  const float *a, *b;
  float *c;
  int accumulate, transposeA, transposeB;
  RowsFn kernel; /* computes columns [n0, n1) of C */
};

/* Columns [n0, n1) of C by one single-threaded OpenBLAS call. */
static void columnsBlas(const Product *p, int64_t n0, int64_t n1) {
  const float *b = p->b + (p->transposeB ? n0 * p->ldb : n0);
  cblas_sgemm(CblasRowMajor, p->transposeA ? CblasTrans : CblasNoTrans,
              p->transposeB ? CblasTrans : CblasNoTrans, (blasint)p->m,
              (blasint)(n1 - n0), (blasint)p->k, 1.0f, p->a, (blasint)p->lda, b,
              (blasint)p->ldb, p->accumulate ? 1.0f : 0.0f, p->c + n0,
              (blasint)p->ldc);
}

static inline void store(const Product *p, int64_t i, int64_t j, float v) {
  float *out = p->c + i * p->ldc + j;
  *out = p->accumulate ? *out + v : v;
}

static void rowsPortable(const Product *p, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; ++j) {
    const float *bj = p->b + j * p->ldb;
    for (int64_t i = 0; i < p->m; ++i) {
      const float *ai = p->a + i * p->lda;
      /* Eight partial sums, so that the compiler can vectorize without
       * reassociating. */
      float acc[8] = {0};
      int64_t q = 0;
      for (; q + 8 <= p->k; q += 8)
        for (int l = 0; l < 8; ++l)
          acc[l] += ai[q + l] * bj[q + l];
      float sum = 0;
      for (int l = 0; l < 8; ++l)
        sum += acc[l];
      for (; q < p->k; ++q)
        sum += ai[q] * bj[q];
      store(p, i, j, sum);
    }
  }
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) static void
rowsAvx2(const Product *p, int64_t n0, int64_t n1) {
  int64_t k8 = p->k & ~(int64_t)7;
  int64_t j = n0;
  for (; j + 4 <= n1; j += 4) {
    const float *b0 = p->b + j * p->ldb, *b1 = b0 + p->ldb, *b2 = b1 + p->ldb,
                *b3 = b2 + p->ldb;
    int64_t i = 0;
    /* Two rows of A against four of B: eight accumulators. */
    for (; i + 2 <= p->m; i += 2) {
      const float *a0 = p->a + i * p->lda, *a1 = a0 + p->lda;
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00,
             c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      for (int64_t q = 0; q < k8; q += 8) {
        __m256 x0 = _mm256_loadu_ps(a0 + q), x1 = _mm256_loadu_ps(a1 + q);
        __m256 y = _mm256_loadu_ps(b0 + q);
        c00 = _mm256_fmadd_ps(x0, y, c00);
        c10 = _mm256_fmadd_ps(x1, y, c10);
        y = _mm256_loadu_ps(b1 + q);
        c01 = _mm256_fmadd_ps(x0, y, c01);
        c11 = _mm256_fmadd_ps(x1, y, c11);
        y = _mm256_loadu_ps(b2 + q);
        c02 = _mm256_fmadd_ps(x0, y, c02);
        c12 = _mm256_fmadd_ps(x1, y, c12);
        y = _mm256_loadu_ps(b3 + q);
        c03 = _mm256_fmadd_ps(x0, y, c03);
        c13 = _mm256_fmadd_ps(x1, y, c13);
      }
      float s[8] = {hsum(c00), hsum(c01), hsum(c02), hsum(c03),
                    hsum(c10), hsum(c11), hsum(c12), hsum(c13)};
      for (int64_t q = k8; q < p->k; ++q) {
        s[0] += a0[q] * b0[q];
        s[1] += a0[q] * b1[q];
        s[2] += a0[q] * b2[q];
        s[3] += a0[q] * b3[q];
        s[4] += a1[q] * b0[q];
        s[5] += a1[q] * b1[q];
        s[6] += a1[q] * b2[q];
        s[7] += a1[q] * b3[q];
      }
      for (int r = 0; r < 4; ++r) {
        store(p, i, j + r, s[r]);
        store(p, i + 1, j + r, s[4 + r]);
      }
    }
    if (i < p->m) {
      const float *a0 = p->a + i * p->lda;
      __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
      for (int64_t q = 0; q < k8; q += 8) {
        __m256 x = _mm256_loadu_ps(a0 + q);
        c0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b0 + q), c0);
        c1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b1 + q), c1);
        c2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b2 + q), c2);
        c3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b3 + q), c3);
      }
      float s[4] = {hsum(c0), hsum(c1), hsum(c2), hsum(c3)};
      for (int64_t q = k8; q < p->k; ++q) {
        s[0] += a0[q] * b0[q];
        s[1] += a0[q] * b1[q];
        s[2] += a0[q] * b2[q];
        s[3] += a0[q] * b3[q];
      }
      for (int r = 0; r < 4; ++r)
        store(p, i, j + r, s[r]);
    }
  }
  if (j < n1)
    rowsPortable(p, j, n1);
}
#endif

/* B [k, n] (not transposed): C rows are sums of B rows scaled by A's
 * entries, vectorized along n. */
#define COLUMNS_BODY                                                           \
  for (int64_t i = 0; i < p->m; ++i) {                                         \
    float *ci = p->c + i * p->ldc;                                             \
    const float *ai = p->a + i * p->lda;                                       \
    if (!p->accumulate)                                                        \
      for (int64_t j = n0; j < n1; ++j)                                        \
        ci[j] = 0;                                                             \
    for (int64_t q = 0; q < p->k; ++q) {                                       \
      const float *bq = p->b + q * p->ldb;                                     \
      float x = ai[q];                                                         \
      for (int64_t j = n0; j < n1; ++j)                                        \
        ci[j] += x * bq[j];                                                    \
    }                                                                          \
  }

static void columnsPortable(const Product *p, int64_t n0, int64_t n1) {
  COLUMNS_BODY
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void
columnsAvx2(const Product *p, int64_t n0, int64_t n1) {
  COLUMNS_BODY
}
#endif

/* The kernels for B transposed ([n, k], a weight) and not ([k, n]). */
static void pickKernels(RowsFn *transposed, RowsFn *plain) {
  *transposed = rowsPortable;
  *plain = columnsPortable;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    *transposed = rowsAvx2;
    *plain = columnsAvx2;
  }
#endif
}

/*===----------------------------------------------------------------------===*
 * Threads
 *===----------------------------------------------------------------------===*/

#define MAX_THREADS 64
/* Spins before a waiting worker sleeps (about 100 µs). */
#define SPINS 200000

static struct {
  pthread_once_t once;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  int threads; /* requested; 0 until the first use or a setter call */
  int started; /* workers running (threads - 1 once started) */
  atomic_uint generation;
  atomic_int pending;
  atomic_int sleeping;
  const Product *product;
  RowsFn transposedKernel, plainKernel;
} gPool = {.once = PTHREAD_ONCE_INIT,
           .mutex = PTHREAD_MUTEX_INITIALIZER,
           .wake = PTHREAD_COND_INITIALIZER};

/* Rows of B for part `part` of `parts`, in blocks of four. */
static void partRange(int64_t n, int part, int parts, int64_t *n0,
                      int64_t *n1) {
  int64_t blocks = (n + 3) / 4;
  int64_t begin = blocks * part / parts, end = blocks * (part + 1) / parts;
  *n0 = begin * 4 < n ? begin * 4 : n;
  *n1 = end * 4 < n ? end * 4 : n;
}

static void runPart(int part) {
  const Product *p = gPool.product;
  int64_t n0, n1;
  partRange(p->n, part, gPool.started + 1, &n0, &n1);
  if (n0 < n1)
    p->kernel(p, n0, n1);
}

static void *worker(void *arg) {
  int part = (int)(intptr_t)arg;
  /* The pool starts before the first product (generation 0). */
  unsigned seen = 0;
  for (;;) {
    unsigned now = seen;
    for (int spin = 0; spin < SPINS; ++spin) {
      now = atomic_load_explicit(&gPool.generation, memory_order_acquire);
      if (now != seen)
        break;
#if defined(__x86_64__)
      _mm_pause();
#endif
    }
    if (now == seen) {
      pthread_mutex_lock(&gPool.mutex);
      atomic_fetch_add(&gPool.sleeping, 1);
      while ((now = atomic_load(&gPool.generation)) == seen)
        pthread_cond_wait(&gPool.wake, &gPool.mutex);
      atomic_fetch_sub(&gPool.sleeping, 1);
      pthread_mutex_unlock(&gPool.mutex);
    }
    seen = now;
    runPart(part);
    atomic_fetch_sub_explicit(&gPool.pending, 1, memory_order_release);
  }
  return NULL;
}

static void startPool(void) {
  pickKernels(&gPool.transposedKernel, &gPool.plainKernel);
  if (gPool.threads < 1)
    gPool.threads = openblas_get_num_threads();
  openblas_set_num_threads(1);
  if (gPool.threads > MAX_THREADS)
    gPool.threads = MAX_THREADS;
  /* Worker w computes part w of started + 1 (the caller part 0): parts are
   * numbered by the workers that did start. */
  for (int t = 1; t < gPool.threads; ++t) {
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&thread, &attr, worker,
                       (void *)(intptr_t)(gPool.started + 1)) == 0)
      ++gPool.started;
    pthread_attr_destroy(&attr);
  }
}

void moertSetCpuThreads(int threads) {
  /* Only before the first product: the workers start once. */
  gPool.threads = threads;
}

void moertCpuGemm(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                  int transposeA, const float *b, int64_t ldb, int transposeB,
                  float *c, int64_t ldc, int accumulate) {
  pthread_once(&gPool.once, startPool);
  Product p = {m, n, k,          lda,        ldb,        ldc,        a,
               b, c, accumulate, transposeA, transposeB, columnsBlas};
  if (m <= MOERT_SKINNY_MAX_M && !transposeA)
    p.kernel = transposeB ? gPool.transposedKernel : gPool.plainKernel;
  /* Small products are not worth waking the workers for. */
  if (gPool.started == 0 || m * n * k < (int64_t)1 << 16) {
    p.kernel(&p, 0, n);
    return;
  }
  gPool.product = &p;
  atomic_store(&gPool.pending, gPool.started);
  /* Sequentially consistent with the workers' `sleeping` count: either a
   * worker sees the new generation or this sees it asleep and wakes it. */
  atomic_fetch_add(&gPool.generation, 1);
  if (atomic_load(&gPool.sleeping) > 0) {
    pthread_mutex_lock(&gPool.mutex);
    pthread_cond_broadcast(&gPool.wake);
    pthread_mutex_unlock(&gPool.mutex);
  }
  runPart(0);
  while (atomic_load_explicit(&gPool.pending, memory_order_acquire) > 0) {
#if defined(__x86_64__)
    _mm_pause();
#endif
  }
}
