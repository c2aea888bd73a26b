/*===- comm_mpi_test.c - the collectives under mpiexec --------------------===*
 *
 * Run as `mpiexec -n 4 moert-comm-test`: with the plan dp=2, tp=2, ep=2,
 * etp=2 it checks the group layout and every collective compiled code calls
 * against values each rank can compute on its own. With `--pp` the plan is
 * tp=2, pp=2 and it checks the pipeline group, send/recv and the output
 * move. Prints one line per check
 * on rank 0 and ends with "N passed, N failed"; exits non-zero on failure.
 *
 * With `--stop` (any plan) the last rank stops itself (SIGSTOP) before an
 * all_reduce over the world: the others must abort the job once
 * MOERT_TIMEOUT has passed, naming the collective.
 *
 *===----------------------------------------------------------------------===*/

#include "moert/comm.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

static void expect(int ok, const char *what) {
  int all = 0;
  /* Every rank's verdict counts: a check passes only if it passed on all. */
  float mine = ok ? 0.0f : 1.0f, sum = 0.0f;
  moert_memref1d_f32_t in = {&mine, &mine, 0, {1}, {1}};
  moert_memref1d_f32_t out = {&sum, &sum, 0, {1}, {1}};
  _mlir_ciface_moert_all_reduce_f32(&in, &out, MOERT_GROUP_WORLD);
  all = sum == 0.0f;
  if (moert_comm_rank() == 0)
    printf("%s: %s\n", all ? "PASS" : "FAIL", what);
  if (all)
    ++passed;
  else
    ++failed;
}

static moert_memref1d_f32_t vec(float *p, long n) {
  moert_memref1d_f32_t m = {p, p, 0, {n}, {1}};
  return m;
}

/* tp=2, pp=2: stage 0 is ranks {0,1}, stage 1 ranks {2,3}; the pp groups
 * are {0,2} and {1,3}. */
static void pipelineChecks(void) {
  int r = moert_comm_rank();
  moert_coords_t c = moert_comm_coords();
  expect(c.pp == r / 2 && c.tp == r % 2 && c.dp == 0, "pipeline coordinates");
  expect(moert_group_rank(MOERT_GROUP_PP) == c.pp,
         "the pp group rank is the stage");
  float buffer[3] = {(float)r, 1.0f, 2.0f};
  moert_memref1d_f32_t m = vec(buffer, 3);
  if (c.pp == 0)
    _mlir_ciface_moert_send_f32(&m, MOERT_GROUP_PP, 1);
  else
    _mlir_ciface_moert_recv_f32(&m, MOERT_GROUP_PP, 0);
  expect(buffer[0] == (float)c.tp && buffer[2] == 2.0f,
         "send/recv moves a stage's buffer to the next stage");
  moert_collective_t kind = c.pp == 0 ? MOERT_SEND : MOERT_RECV;
  expect(moert_comm_calls(kind, MOERT_GROUP_PP) == 1 &&
             moert_comm_bytes(kind, MOERT_GROUP_PP) ==
                 3 * (long long)sizeof(float),
         "send and recv count their bytes on the pp group");
  float out[2] = {(float)r, (float)r};
  moert_comm_move_f32(out, 2, 3, 0);
  expect(r != 0 || (out[0] == 3.0f && out[1] == 3.0f),
         "move brings the last stage's rows to rank 0");
}

/* The non-blocking forms: two collectives in flight at once on different
 * groups, completed in the other order, give what the blocking ones give. */
static void asyncChecks(void) {
  moert_coords_t c = moert_comm_coords();
  int r = moert_comm_rank();
  float a[8], b[8];
  for (int j = 0; j < 2; ++j)
    for (int q = 0; q < 4; ++q)
      a[4 * j + q] = (float)(10 * c.ep + j);
  float x[2] = {(float)r, 1.0f}, y[2] = {-1, -1};
  moert_memref1d_f32_t ma = vec(a, 8), mb = vec(b, 8), mx = vec(x, 2),
                       my = vec(y, 2);
  long long before = moert_comm_calls(MOERT_ALL_TO_ALL, MOERT_GROUP_EP);
  int64_t first =
      _mlir_ciface_moert_start_all_to_all_f32(&ma, &mb, MOERT_GROUP_EP);
  int64_t second =
      _mlir_ciface_moert_start_all_reduce_f32(&mx, &my, MOERT_GROUP_TP);
  expect(first > 0 && second > 0 && first != second,
         "started collectives have distinct handles");
  moert_comm_progress();
  _mlir_ciface_moert_wait_f32(second, &mx, &my);
  _mlir_ciface_moert_wait_f32(first, &ma, &mb);
  int ok = 1;
  for (int i = 0; i < 2; ++i)
    for (int q = 0; q < 4; ++q)
      ok &= b[4 * i + q] == (float)(10 * i + c.ep);
  expect(ok, "a started all_to_all delivers what the blocking one does");
  float base = (float)(2 * c.dp);
  expect(y[0] == 2 * base + 1 && y[1] == 2.0f,
         "a started all_reduce delivers what the blocking one does");
  expect(moert_comm_calls(MOERT_ALL_TO_ALL, MOERT_GROUP_EP) == before + 1,
         "a started collective is counted once");
}

/* --stop: the last rank stops; the others wait in an all_reduce until the
 * watchdog aborts the job. */
static int stopCheck(void) {
  int r = moert_comm_rank();
  if (r == moert_comm_size() - 1) {
    fprintf(stderr, "rank %d: stopping\n", r);
    fflush(stderr);
    raise(SIGSTOP);
  }
  float x = 1.0f, y = 0.0f;
  moert_memref1d_f32_t mx = vec(&x, 1), my = vec(&y, 1);
  _mlir_ciface_moert_all_reduce_f32(&mx, &my, MOERT_GROUP_WORLD);
  printf("FAIL: the all_reduce returned without the stopped rank\n");
  return 1;
}

int main(int argc, char **argv) {
  /* The layout of the plan under test, as moe-compile writes it
   * (--explain-plan --explain-format=manifest): dp=2,tp=2,ep=2,etp=2, or
   * tp=2,pp=2 with --pp. */
  if (argc < 2) {
    fprintf(stderr, "usage: moert-comm-test LAYOUT [--pp | --stop]\n");
    return 2;
  }
  int pipeline = argc > 2 && !strcmp(argv[2], "--pp");
  int stop = argc > 2 && !strcmp(argv[2], "--stop");
  moert_status_t status = moert_comm_init_from_file(argv[1], &argc, &argv);
  if (status) {
    fprintf(stderr, "error: %s\n", moert_status_message(status));
    return 1;
  }
  if (stop)
    return stopCheck();
  int r = moert_comm_rank();
  moert_coords_t c = moert_comm_coords();

  expect(moert_comm_size() == 4, "world of 4 ranks");
  if (pipeline) {
    pipelineChecks();
    if (r == 0)
      printf("%d passed, %d failed\n", passed, failed);
    moert_comm_finalize();
    return failed ? 1 : 0;
  }
  /* Experts: etp partners {0,1}, {2,3}; ep groups {0,2}, {1,3}. */
  expect(c.tp == r % 2 && c.dp == r / 2 && c.etp == r % 2 && c.ep == r / 2,
         "coordinates");
  expect(moert_group_rank(MOERT_GROUP_TP) == c.tp &&
             moert_group_rank(MOERT_GROUP_DP) == c.dp &&
             moert_group_rank(MOERT_GROUP_EP) == c.ep &&
             moert_group_rank(MOERT_GROUP_ETP) == c.etp,
         "group ranks follow the coordinates");

  /* all_reduce over tp: ranks {0,1} and {2,3}. */
  float x[3] = {(float)r, 1.0f, (float)(10 * r)}, y[3];
  moert_memref1d_f32_t mx = vec(x, 3), my = vec(y, 3);
  _mlir_ciface_moert_all_reduce_f32(&mx, &my, MOERT_GROUP_TP);
  float base = (float)(2 * c.dp);
  expect(y[0] == 2 * base + 1 && y[1] == 2.0f && y[2] == 10 * (2 * base + 1),
         "all_reduce sums over the tp group");

  /* all_gather over dp: ranks {0,2} and {1,3}, in dp order. */
  float g[2];
  moert_memref1d_f32_t mg = vec(g, 2), mone = vec(x, 1);
  _mlir_ciface_moert_all_gather_f32(&mone, &mg, MOERT_GROUP_DP);
  expect(g[0] == (float)c.tp && g[1] == (float)(2 + c.tp),
         "all_gather concatenates over the dp group");

  /* all_to_all over ep (2 members): chunk j of member i holds 10*i + j. */
  float a[8], b[8];
  for (int j = 0; j < 2; ++j)
    for (int q = 0; q < 4; ++q)
      a[4 * j + q] = (float)(10 * c.ep + j);
  moert_memref1d_f32_t ma = vec(a, 8), mb = vec(b, 8);
  _mlir_ciface_moert_all_to_all_f32(&ma, &mb, MOERT_GROUP_EP);
  int ok = 1;
  for (int i = 0; i < 2; ++i)
    for (int q = 0; q < 4; ++q)
      ok &= b[4 * i + q] == (float)(10 * i + c.ep);
  expect(ok, "all_to_all sends chunk j to member j, in source order");
  expect(moert_comm_bytes(MOERT_ALL_TO_ALL, MOERT_GROUP_EP) ==
             4 * (long long)sizeof(float),
         "all_to_all counts the half of the buffer that leaves the rank");

  /* reduce_scatter over etp (= tp here): chunk k of the sum. */
  float s[4] = {1.0f, 2.0f, (float)r, 3.0f}, t[2];
  moert_memref1d_f32_t ms = vec(s, 4), mt = vec(t, 2);
  _mlir_ciface_moert_reduce_scatter_f32(&ms, &mt, MOERT_GROUP_ETP);
  float pair = (float)(2 * (2 * c.dp) + 1); /* r of both members summed */
  expect(c.etp == 0 ? (t[0] == 2.0f && t[1] == 4.0f)
                    : (t[0] == pair && t[1] == 6.0f),
         "reduce_scatter gives each rank its chunk of the sum");

  /* The output gather of the driver: dp group to its first rank. */
  float mine = (float)r, rows[2] = {-1, -1};
  moert_comm_gather_f32(&mine, rows, 1, MOERT_GROUP_DP);
  expect(c.dp != 0 || (rows[0] == (float)c.tp && rows[1] == (float)(2 + c.tp)),
         "gather collects a dp group on its first rank");
  asyncChecks();

  if (r == 0)
    printf("%d passed, %d failed\n", passed, failed);
  moert_comm_finalize();
  return failed ? 1 : 0;
}
