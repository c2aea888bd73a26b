/* read_bandwidth.c - the memory read bandwidth of this machine: T threads
 * each sum their share of a 1 GiB float buffer (a STREAM-like read), best of
 * five passes. Prints "read_bandwidth_gbs <GB/s>".
 * usage: read_bandwidth [threads] */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define BYTES (1L << 30)

typedef struct {
  const float *data;
  long count;
  float sum;
} Part;

static void *readPart(void *arg) {
  Part *p = arg;
  /* 32 independent sums: the compiler vectorizes the loop, and four vector
   * chains hide the latency of the adds. */
  float acc[32] = {0};
  for (long i = 0; i + 32 <= p->count; i += 32)
    for (int l = 0; l < 32; ++l)
      acc[l] += p->data[i + l];
  for (int l = 0; l < 32; ++l)
    p->sum += acc[l];
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
