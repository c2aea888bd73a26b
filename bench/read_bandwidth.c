/* read_bandwidth.c - the memory read bandwidth of this machine: T threads
 * each sum their share of a 1 GiB float buffer (a STREAM-like read), best of
 * five passes. Prints "read_bandwidth_gbs <GB/s>".
 * usage: read_bandwidth [threads] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#if defined(__AVX2__)
#include <immintrin.h>
#endif

#define BYTES (1L << 30)

typedef struct {
  const float *data;
  long count;
  float sum;
} Part;

static void *readPart(void *arg) {
  Part *p = arg;
  long i = 0;
#if defined(__AVX2__)
  /* Four vector sums: their chains hide the latency of the adds. */
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (; i + 32 <= p->count; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p->data + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p->data + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p->data + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p->data + i + 24));
  }
  float lanes[8];
  _mm256_storeu_ps(lanes,
                   _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  for (int l = 0; l < 8; ++l)
    p->sum += lanes[l];
#endif
  for (; i < p->count; ++i)
    p->sum += p->data[i];
  return NULL;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 256)
    return fprintf(stderr, "threads must be in [1, 256]\n"), 1;
  long count = BYTES / (long)sizeof(float);
  float *data = malloc(BYTES);
  if (!data)
    return fprintf(stderr, "out of memory\n"), 1;
  for (long i = 0; i < count; ++i)
    data[i] = (float)(i & 7);
  double best = 0;
  float total = 0;
  for (int pass = 0; pass < 5; ++pass) {
    pthread_t tids[256];
    Part parts[256];
    double start = now();
    for (int t = 0; t < threads; ++t) {
      parts[t] = (Part){data + count / threads * t, count / threads, 0};
      pthread_create(&tids[t], NULL, readPart, &parts[t]);
    }
    for (int t = 0; t < threads; ++t) {
      pthread_join(tids[t], NULL);
      total += parts[t].sum;
    }
    double gbs = BYTES / (now() - start) / 1e9;
    if (gbs > best)
      best = gbs;
  }
  printf("read_bandwidth_gbs %.2f (checksum %g)\n", best, (double)total);
  free(data);
  return 0;
}
