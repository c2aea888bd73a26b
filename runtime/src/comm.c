/*===- comm.c - MPI process groups, collectives and counters --------------===*
 *
 * One communicator per group kind, split from MPI_COMM_WORLD by the plan's
 * layout. Every MPI return code is checked; a failure aborts all ranks with a
 * message (MPI_Abort), so no rank is left waiting in a collective. Without
 * MPI (a one-rank plan outside mpiexec) the collectives are identities.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "comm_internal.h"

#ifdef MOERT_NCCL
/* libmoert_cuda: compiled code's collectives run on NCCL. */
#include "cuda/nccl_backend.h"
#endif

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int gInitialized; /* MPI_Init called by us */
static int gUsingMpi;    /* the group communicators exist */
static int gRank, gSize = 1;
static int gLocalRank; /* among the ranks on this node */
static moert_plan_t gPlan = {1, 1, 1, 1, 1};
static moert_coords_t gCoords; /* this rank's, from the layout */
static MPI_Comm gComms[MOERT_NUM_GROUPS];
static long long gCalls[MOERT_NUM_COLLECTIVES][MOERT_NUM_GROUPS];
static long long gBytes[MOERT_NUM_COLLECTIVES][MOERT_NUM_GROUPS];

static const char *kGroupNames[MOERT_NUM_GROUPS] = {"world", "dp",  "tp",
                                                    "ep",    "etp", "pp"};
static const char *kCollectiveNames[MOERT_NUM_COLLECTIVES] = {
    "all_reduce", "all_gather", "all_to_all", "reduce_scatter",
    "gather",     "send",       "recv",       "broadcast"};

const char *moertCollectiveName(moert_collective_t kind) {
  return kCollectiveNames[kind];
}
const char *moertGroupName(int32_t group) { return kGroupNames[group]; }

void moert_comm_abort(const char *message) {
  fprintf(stderr, "error: rank %d: %s\n", gRank, message);
  fflush(stderr);
  if (gInitialized) {
    /* Give mpiexec a moment to forward the message before the job is torn
     * down (otherwise it can be lost when every rank aborts at once). */
    struct timespec pause = {0, 200 * 1000 * 1000};
    nanosleep(&pause, NULL);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  exit(1);
}

void moertCommCheck(int rc, const char *what) {
  if (rc == MPI_SUCCESS)
    return;
  char text[MPI_MAX_ERROR_STRING + 128];
  int length = 0;
  char mpiText[MPI_MAX_ERROR_STRING];
  MPI_Error_string(rc, mpiText, &length);
  snprintf(text, sizeof(text), "MPI %s failed: %s", what, mpiText);
  moert_comm_abort(text);
}

moert_status_t moert_comm_init(const moert_layout_t *layout, int *argc,
                               char ***argv) {
  const moert_plan_t *plan = &layout->plan;
  moert_status_t status = moert_plan_validate(plan);
  if (status)
    return status;
  if (layout->world != moert_plan_world_size(plan) ||
      (layout->world > 1 && !layout->ranks))
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "the layout lists %d ranks for a plan of %d",
                             layout->world, moert_plan_world_size(plan));
  status = moertReadWaitSettings();
  if (status)
    return status;
  gPlan = *plan;
  memset(&gCoords, 0, sizeof(gCoords));
  int want = moert_plan_world_size(plan);
  /* mpiexec (Hydra) exports PMI_SIZE; without it a one-rank plan runs as a
   * plain process. */
  const char *pmiSize = getenv("PMI_SIZE");
  if (want == 1 && !pmiSize)
    return NULL;
  int already = 0;
  MPI_Initialized(&already);
  /* A progress thread calls MPI beside the rank's own calls. */
  int required = moertProgress == MOERT_PROGRESS_THREAD ? MPI_THREAD_MULTIPLE
                                                        : MPI_THREAD_SINGLE;
  int provided = MPI_THREAD_SINGLE;
  if (!already) {
    if (MPI_Init_thread(argc, argv, required, &provided) != MPI_SUCCESS)
      return moert_status_make(MOERT_UNAVAILABLE, "MPI_Init failed");
    gInitialized = 1;
  } else {
    MPI_Query_thread(&provided);
  }
  if (provided < required)
    return moert_status_make(MOERT_UNAVAILABLE,
                             "MOERT_PROGRESS=thread needs MPI with "
                             "MPI_THREAD_MULTIPLE");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &gRank);
  MPI_Comm_size(MPI_COMM_WORLD, &gSize);
  if (gSize != want)
    return moert_status_make(
        MOERT_INVALID_ARGUMENT,
        "this executable was compiled for a plan of %d ranks (dp=%d x tp=%d "
        "x pp=%d) but runs on %d; start it with mpiexec -n %d",
        want, plan->dp, plan->tp, plan->pp, gSize, want);

  /* One rank without a table (a plan-less program under mpiexec -n 1):
   * every group is the world. */
  static const moert_rank_place_t kOnlyRank;
  const moert_rank_place_t *place =
      layout->ranks ? &layout->ranks[gRank] : &kOnlyRank;
  const int *colors = place->colors;
  gCoords = place->coords;
  gComms[MOERT_GROUP_WORLD] = MPI_COMM_WORLD;
  for (int g = 1; g < MOERT_NUM_GROUPS; ++g) {
    moertCommCheck(MPI_Comm_split(MPI_COMM_WORLD, colors[g], gRank, &gComms[g]),
                   "Comm_split");
    MPI_Comm_set_errhandler(gComms[g], MPI_ERRORS_RETURN);
  }
  gUsingMpi = 1;

  /* Ranks on this node vs cores: oversubscribed ranks must not spin. */
  MPI_Comm node;
  int onNode = 1;
  if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, gRank,
                          MPI_INFO_NULL, &node) == MPI_SUCCESS) {
    MPI_Comm_size(node, &onNode);
    MPI_Comm_rank(node, &gLocalRank);
    MPI_Comm_free(&node);
  }
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const char *wait = getenv("MOERT_WAIT");
  if (wait && !strcmp(wait, "yield"))
    moertYieldWait = 1;
  else if (wait && !strcmp(wait, "spin"))
    moertYieldWait = 0;
  else if (wait && *wait)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "MOERT_WAIT=%s: expected spin or yield", wait);
  else
    moertYieldWait = cores > 0 && onNode > cores;
  return moertStartProgressThread();
}

int moert_comm_rank(void) { return gRank; }
int moert_comm_local_rank(void) { return gLocalRank; }
int moert_comm_size(void) { return gSize; }
moert_coords_t moert_comm_coords(void) { return gCoords; }

void moert_comm_finalize(void) {
  moertStopProgressThread();
#ifdef MOERT_NCCL
  if (gUsingMpi)
    moertNcclFinalize();
#endif
  if (gUsingMpi)
    for (int g = 1; g < MOERT_NUM_GROUPS; ++g)
      MPI_Comm_free(&gComms[g]);
  gUsingMpi = 0;
  if (gInitialized)
    MPI_Finalize();
  gInitialized = 0;
}

double moert_comm_max_f64(double value) {
  double max = value;
  if (gUsingMpi) {
    MPI_Allreduce(&value, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  }
  return max;
}

void moert_comm_barrier(void) {
  /* Waited for like the collectives: oversubscribed ranks must not spin
   * here either (the executables time every pass between barriers). */
  if (gUsingMpi)
    RUN_COLLECTIVE(MOERT_BROADCAST, MOERT_GROUP_WORLD, -1,
                   MPI_Ibarrier(MPI_COMM_WORLD, request_), "Barrier");
}

long long moert_comm_calls(moert_collective_t kind, moert_group_t group) {
  return gCalls[kind][group];
}
long long moert_comm_bytes(moert_collective_t kind, moert_group_t group) {
  return gBytes[kind][group];
}

void moert_comm_print_stats(FILE *out) {
  for (int k = 0; k < MOERT_NUM_COLLECTIVES; ++k)
    for (int g = 0; g < MOERT_NUM_GROUPS; ++g)
      if (gCalls[k][g])
        fprintf(out, "rank %d: %s %s: %lld calls, %lld bytes\n", gRank,
                kCollectiveNames[k], kGroupNames[g], gCalls[k][g],
                gBytes[k][g]);
}

/* The communicator of `group`, its size and our rank in it; NULL comm when
 * the program runs without MPI (then every group has one member). */
static MPI_Comm groupComm(int32_t group, int *size, int *rank) {
  if (group < 0 || group >= MOERT_NUM_GROUPS)
    moert_comm_abort("collective on an unknown group");
  MPI_Comm comm = gUsingMpi ? gComms[group] : MPI_COMM_NULL;
  *size = 1;
  *rank = 0;
  if (comm != MPI_COMM_NULL) {
    MPI_Comm_size(comm, size);
    MPI_Comm_rank(comm, rank);
  }
  return comm;
}

int moertGroupSize(int32_t group) {
  int size, rank;
  groupComm(group, &size, &rank);
  return size;
}

int64_t moert_group_rank(int32_t group) {
  int size, rank;
  groupComm(group, &size, &rank);
  return rank;
}

static void count(moert_collective_t kind, int32_t group, long long bytes) {
  gCalls[kind][group] += 1;
  gBytes[kind][group] += bytes;
}

static float *data(const moert_memref1d_f32_t *m) {
  return m->aligned + m->offset;
}

/* What the collectives of compiled code share: the group, the contiguity
 * and size checks (a mismatch is a compiler bug, so it aborts every rank with
 * the sizes), the byte counter, and the one-member case, which is a copy.
 * Returns the communicator, or MPI_COMM_NULL when the copy did the work. */
static MPI_Comm beginCollective(moert_collective_t kind, int32_t group,
                                moert_memref1d_f32_t *in,
                                moert_memref1d_f32_t *out, int *size,
                                long long *bytes) {
  int rank;
  MPI_Comm comm = groupComm(group, size, &rank);
  const char *name = kCollectiveNames[kind];
  long long n = in->sizes[0], m = out->sizes[0], s = *size;
  char message[256];
  if ((n > 1 && in->strides[0] != 1) || (m > 1 && out->strides[0] != 1)) {
    snprintf(message, sizeof(message), "%s on a strided buffer", name);
    moert_comm_abort(message);
  }
  int fits = 0;
  long long sent = n; /* elements this rank contributes */
  switch (kind) {
  case MOERT_ALL_REDUCE:
    fits = m == n;
    break;
  case MOERT_ALL_GATHER:
    fits = m == n * s;
    break;
  case MOERT_ALL_TO_ALL:
    fits = m == n && n % s == 0;
    sent = n - n / s; /* its own chunk stays */
    break;
  case MOERT_REDUCE_SCATTER:
    fits = n == m * s;
    break;
  default:
    break;
  }
  if (!fits) {
    snprintf(message, sizeof(message),
             "%s: input of %lld and output of %lld elements do not fit a "
             "group of %lld",
             name, n, m, s);
    moert_comm_abort(message);
  }
  *bytes = sent * (long long)sizeof(float);
  count(kind, group, *bytes);
  if (comm == MPI_COMM_NULL || s == 1) {
#ifdef MOERT_NCCL
    /* A started collective is not preceded by a wait for the kernels
     * (moe-gpu-async-launches): they may still write `in`. */
    moert_gpu_sync();
#endif
    memmove(data(out), data(in), (size_t)(m < n ? m : n) * sizeof(float));
    return MPI_COMM_NULL;
  }
  return comm;
}

/* Starts a collective of compiled code and returns its handle (0 when it
 * is already complete; < 0 for NCCL's). */
static int64_t startCollective(moert_collective_t kind,
                               moert_memref1d_f32_t *in,
                               moert_memref1d_f32_t *out, int32_t group,
                               int async) {
  int size;
  long long bytes;
  MPI_Comm comm = beginCollective(kind, group, in, out, &size, &bytes);
  if (comm == MPI_COMM_NULL)
    return 0;
  float *src = data(in), *dst = data(out);
  int n = (int)in->sizes[0], m = (int)out->sizes[0];
#ifdef MOERT_NCCL
  /* On the communication stream; a started one overlaps the kernels issued
   * before its wait. */
  int64_t nccl;
  switch (kind) {
  case MOERT_ALL_REDUCE:
    nccl = moertNcclAllReduce(group, comm, src, dst, (size_t)n, async);
    break;
  case MOERT_ALL_GATHER:
    nccl = moertNcclAllGather(group, comm, src, dst, (size_t)n, async);
    break;
  case MOERT_ALL_TO_ALL:
    nccl = moertNcclAllToAll(group, comm, src, dst, (size_t)(n / size), size,
                             async);
    break;
  default:
    nccl = moertNcclReduceScatter(group, comm, src, dst, (size_t)m, async);
    break;
  }
  return -nccl;
#else
  (void)async;
#endif
  MPI_Request *request;
  int64_t handle = moertBeginRequest(kind, group, bytes, &request);
  int rc;
  switch (kind) {
  case MOERT_ALL_REDUCE:
    rc = MPI_Iallreduce(src, dst, n, MPI_FLOAT, MPI_SUM, comm, request);
    break;
  case MOERT_ALL_GATHER:
    rc = MPI_Iallgather(src, n, MPI_FLOAT, dst, n, MPI_FLOAT, comm, request);
    break;
  case MOERT_ALL_TO_ALL:
    rc = MPI_Ialltoall(src, n / size, MPI_FLOAT, dst, n / size, MPI_FLOAT, comm,
                       request);
    break;
  default:
    rc = MPI_Ireduce_scatter_block(src, dst, m, MPI_FLOAT, MPI_SUM, comm,
                                   request);
    break;
  }
  moertCommCheck(rc, kCollectiveNames[kind]);
  return handle;
}

/* Completes the collective of a startCollective handle. */
static void completeCollective(int64_t handle, const char *what) {
#ifdef MOERT_NCCL
  if (handle < 0) {
    moertNcclWait(-handle);
    return;
  }
#endif
  moertCompleteRequest(handle, MPI_STATUS_IGNORE, what);
}

static void runCollective(moert_collective_t kind, moert_memref1d_f32_t *in,
                          moert_memref1d_f32_t *out, int32_t group) {
  completeCollective(startCollective(kind, in, out, group, /*async=*/0),
                     kCollectiveNames[kind]);
}

void _mlir_ciface_moert_all_reduce_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  runCollective(MOERT_ALL_REDUCE, in, out, group);
}

void _mlir_ciface_moert_all_gather_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  runCollective(MOERT_ALL_GATHER, in, out, group);
}

void _mlir_ciface_moert_all_to_all_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  runCollective(MOERT_ALL_TO_ALL, in, out, group);
}

void _mlir_ciface_moert_reduce_scatter_f32(moert_memref1d_f32_t *in,
                                           moert_memref1d_f32_t *out,
                                           int32_t group) {
  runCollective(MOERT_REDUCE_SCATTER, in, out, group);
}

int64_t _mlir_ciface_moert_start_all_reduce_f32(moert_memref1d_f32_t *in,
                                                moert_memref1d_f32_t *out,
                                                int32_t group) {
  return startCollective(MOERT_ALL_REDUCE, in, out, group, /*async=*/1);
}

int64_t _mlir_ciface_moert_start_all_gather_f32(moert_memref1d_f32_t *in,
                                                moert_memref1d_f32_t *out,
                                                int32_t group) {
  return startCollective(MOERT_ALL_GATHER, in, out, group, /*async=*/1);
}

int64_t _mlir_ciface_moert_start_all_to_all_f32(moert_memref1d_f32_t *in,
                                                moert_memref1d_f32_t *out,
                                                int32_t group) {
  return startCollective(MOERT_ALL_TO_ALL, in, out, group, /*async=*/1);
}

int64_t _mlir_ciface_moert_start_reduce_scatter_f32(moert_memref1d_f32_t *in,
                                                    moert_memref1d_f32_t *out,
                                                    int32_t group) {
  return startCollective(MOERT_REDUCE_SCATTER, in, out, group,
                         /*async=*/1);
}

void _mlir_ciface_moert_wait_f32(int64_t handle, moert_memref1d_f32_t *in,
                                 moert_memref1d_f32_t *out) {
  (void)in;
  (void)out;
  completeCollective(handle, "wait");
}

void moert_comm_gather_f32(const float *in, float *out, long n,
                           moert_group_t group) {
  int size, rank;
  MPI_Comm comm = groupComm(group, &size, &rank);
  count(MOERT_GATHER, group, (long long)n * (long long)sizeof(float));
  if (comm == MPI_COMM_NULL || size == 1) {
    memmove(out, in, (size_t)n * sizeof(float));
    return;
  }
  RUN_COLLECTIVE(MOERT_GATHER, group, -1,
                 MPI_Igather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, 0,
                             comm, request_),
                 "Gather");
}

void moert_comm_broadcast_i64(int64_t *buffer, long n, int root) {
  if (!gUsingMpi)
    return;
  count(MOERT_BROADCAST, MOERT_GROUP_WORLD,
        (long long)n * (long long)sizeof(int64_t));
  RUN_COLLECTIVE(
      MOERT_BROADCAST, MOERT_GROUP_WORLD, -1,
      MPI_Ibcast(buffer, (int)n, MPI_INT64_T, root, MPI_COMM_WORLD, request_),
      "Bcast");
}

/* The communicator of `group` for a point-to-point call with `peer`; aborts
 * on a peer outside the group or on this rank itself. */
static MPI_Comm peerComm(const char *what, int32_t group, int64_t peer,
                         const moert_memref1d_f32_t *buffer) {
  int size, rank;
  MPI_Comm comm = groupComm(group, &size, &rank);
  char message[256];
  if (peer < 0 || peer >= size || peer == rank || comm == MPI_COMM_NULL) {
    snprintf(message, sizeof(message),
             "%s with rank %lld of a %s group of %d (this rank is %d)", what,
             (long long)peer, kGroupNames[group], size, rank);
    moert_comm_abort(message);
  }
  if (buffer->sizes[0] > 1 && buffer->strides[0] != 1) {
    snprintf(message, sizeof(message), "%s on a strided buffer", what);
    moert_comm_abort(message);
  }
  return comm;
}

/* send (kind MOERT_SEND, `buffer` read) or recv (MOERT_RECV, written). */
static void pointToPoint(moert_collective_t kind, moert_memref1d_f32_t *buffer,
                         int32_t group, int64_t peer) {
  int sending = kind == MOERT_SEND;
  const char *name = kCollectiveNames[kind];
  MPI_Comm comm = peerComm(name, group, peer, buffer);
  long long n = buffer->sizes[0];
  count(kind, group, n * (long long)sizeof(float));
#ifdef MOERT_NCCL
  moertNcclPointToPoint(sending, group, comm, data(buffer), (size_t)n,
                        (int)peer);
  return;
#endif
  MPI_Status status;
  MPI_Request *request;
  int64_t handle =
      moertBeginRequest(kind, group, n * (long long)sizeof(float), &request);
  if (sending)
    moertCommCheck(
        MPI_Isend(data(buffer), (int)n, MPI_FLOAT, (int)peer, 0, comm, request),
        "Isend");
  else
    moertCommCheck(
        MPI_Irecv(data(buffer), (int)n, MPI_FLOAT, (int)peer, 0, comm, request),
        "Irecv");
  moertCompleteRequest(handle, &status, sending ? "Isend" : "Irecv");
  if (sending)
    return;
  /* A message of another size is a compiler bug: MPI reports truncation,
   * and a shorter one is caught here. */
  int received = 0;
  MPI_Get_count(&status, MPI_FLOAT, &received);
  if (received != n) {
    char message[160];
    snprintf(message, sizeof(message), "recv: expected %lld elements, got %d",
             n, received);
    moert_comm_abort(message);
  }
}

void _mlir_ciface_moert_send_f32(moert_memref1d_f32_t *in, int32_t group,
                                 int64_t peer) {
  pointToPoint(MOERT_SEND, in, group, peer);
}

void _mlir_ciface_moert_recv_f32(moert_memref1d_f32_t *out, int32_t group,
                                 int64_t peer) {
  pointToPoint(MOERT_RECV, out, group, peer);
}

void moert_comm_move_f32(float *buffer, long n, int from, int to) {
  if (from == to || !gUsingMpi)
    return;
  long long bytes = (long long)n * (long long)sizeof(float);
  if (gRank == from) {
    count(MOERT_SEND, MOERT_GROUP_WORLD, bytes);
    RUN_COLLECTIVE(
        MOERT_SEND, MOERT_GROUP_WORLD, bytes,
        MPI_Isend(buffer, (int)n, MPI_FLOAT, to, 1, MPI_COMM_WORLD, request_),
        "Isend");
  } else if (gRank == to) {
    count(MOERT_RECV, MOERT_GROUP_WORLD, bytes);
    RUN_COLLECTIVE(
        MOERT_RECV, MOERT_GROUP_WORLD, bytes,
        MPI_Irecv(buffer, (int)n, MPI_FLOAT, from, 1, MPI_COMM_WORLD, request_),
        "Irecv");
  }
}
