/*===- comm.c - MPI process groups, collectives and counters --------------===*
 *
 * One communicator per group kind, split from MPI_COMM_WORLD by the plan's
 * layout. Every MPI return code is checked; a failure aborts all ranks with a
 * message (MPI_Abort), so no rank is left waiting in a collective. Without
 * MPI (a one-rank plan outside mpiexec) the collectives are identities.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/comm.h"

#ifdef MOERT_NCCL
/* libmoert_cuda: compiled code's collectives run on NCCL. */
#include "cuda/nccl_backend.h"
#endif

#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int gInitialized; /* MPI_Init called by us */
/* Wait for collectives by testing and yielding (nanosleep after a few
 * tries) instead of MPICH's busy-polling blocking calls: on by default when
 * this node runs more ranks than it has cores; MOERT_WAIT=spin|yield
 * chooses. */
static int gYieldWait;
static int gUsingMpi; /* the group communicators exist */
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

int moert_plan_world_size(const moert_plan_t *plan) {
  return plan->dp * plan->tp * plan->pp;
}

moert_status_t moert_plan_validate(const moert_plan_t *p) {
  if (p->dp < 1 || p->tp < 1 || p->ep < 1 || p->etp < 1 || p->pp < 1)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "plan degrees must be >= 1 (dp=%d tp=%d ep=%d "
                             "etp=%d pp=%d)",
                             p->dp, p->tp, p->ep, p->etp, p->pp);
  if ((p->dp * p->tp) % p->ep != 0)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "plan: ep=%d does not divide dp*tp=%d", p->ep,
                             p->dp * p->tp);
  if (p->tp % p->etp != 0)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "plan: etp=%d does not divide tp=%d", p->etp,
                             p->tp);
  if ((p->dp * p->tp) % (p->ep * p->etp) != 0)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "plan: ep*etp=%d does not divide dp*tp=%d",
                             p->ep * p->etp, p->dp * p->tp);
  return NULL;
}

/* Reads the integers after `key` on `line` into `out`; returns how many. */
static int readInts(const char *line, const char *key, int *out, int n) {
  const char *p = strstr(line, key);
  const char *end = strchr(line, '\n');
  if (!p || (end && p > end))
    return 0;
  p += strlen(key);
  int count = 0;
  while (count < n) {
    char *next;
    long v = strtol(p, &next, 10);
    if (next == p || (end && next > end))
      break;
    out[count++] = (int)v;
    p = next;
  }
  return count;
}

moert_status_t moert_layout_parse(const char *text, moert_layout_t *layout) {
  memset(layout, 0, sizeof(*layout));
  layout->plan = (moert_plan_t){1, 1, 1, 1, 1};
  layout->world = 1;
  const char *planLine = NULL;
  for (const char *line = text; line && *line;) {
    if (!strncmp(line, "plan ", 5))
      planLine = line;
    line = strchr(line, '\n');
    if (line)
      ++line;
  }
  if (!planLine)
    return NULL;
  moert_plan_t *p = &layout->plan;
  if (sscanf(planLine, "plan %d %d %d %d %d", &p->dp, &p->tp, &p->ep, &p->etp,
             &p->pp) != 5)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "malformed manifest line: %.60s", planLine);
  moert_status_t status = moert_plan_validate(p);
  if (status)
    return status;
  layout->world = moert_plan_world_size(p);
  layout->ranks = calloc((size_t)layout->world, sizeof(moert_rank_place_t));
  char *seen = calloc((size_t)layout->world, 1);
  if (!layout->ranks || !seen) {
    free(seen);
    moert_layout_free(layout);
    return moert_status_make(MOERT_OUT_OF_MEMORY, "layout of %d ranks",
                             layout->world);
  }
  for (const char *line = text; line && *line;) {
    if (!strncmp(line, "rank ", 5)) {
      int r = -1, coords[7], colors[MOERT_NUM_GROUPS];
      if (sscanf(line, "rank %d", &r) != 1 || r < 0 || r >= layout->world ||
          seen[r] || readInts(line, " coords ", coords, 7) != 7 ||
          readInts(line, " colors ", colors, MOERT_NUM_GROUPS) !=
              MOERT_NUM_GROUPS) {
        free(seen);
        moert_layout_free(layout);
        return moert_status_make(MOERT_INVALID_ARGUMENT,
                                 "malformed or repeated layout line: %.80s",
                                 line);
      }
      seen[r] = 1;
      moert_rank_place_t *place = &layout->ranks[r];
      place->coords =
          (moert_coords_t){coords[0], coords[1], coords[2], coords[3],
                           coords[4], coords[5], coords[6]};
      memcpy(place->colors, colors, sizeof(colors));
    }
    line = strchr(line, '\n');
    if (line)
      ++line;
  }
  for (int r = 0; r < layout->world; ++r)
    if (!seen[r]) {
      free(seen);
      int world = layout->world;
      moert_layout_free(layout);
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "the layout of the plan's %d ranks has no line "
                               "for rank %d",
                               world, r);
    }
  free(seen);
  return NULL;
}

moert_status_t moert_layout_read(const char *path, moert_layout_t *layout) {
  memset(layout, 0, sizeof(*layout));
  FILE *file = fopen(path, "rb");
  if (!file)
    return moert_status_make(MOERT_NOT_FOUND, "cannot open layout '%s'", path);
  char *text = NULL;
  size_t length = 0, capacity = 0;
  for (;;) {
    if (length + 4096 + 1 > capacity) {
      capacity = 2 * capacity + 4096 + 1;
      char *grown = realloc(text, capacity);
      if (!grown) {
        free(text);
        fclose(file);
        return moert_status_make(MOERT_OUT_OF_MEMORY, "reading '%s'", path);
      }
      text = grown;
    }
    size_t n = fread(text + length, 1, 4096, file);
    length += n;
    if (n < 4096)
      break;
  }
  fclose(file);
  text[length] = '\0';
  moert_status_t status = moert_layout_parse(text, layout);
  free(text);
  return status;
}

moert_status_t moert_comm_init_from_file(const char *path, int *argc,
                                         char ***argv) {
  moert_layout_t layout;
  moert_status_t status = moert_layout_read(path, &layout);
  if (!status)
    status = moert_comm_init(&layout, argc, argv);
  moert_layout_free(&layout);
  return status;
}

void moert_layout_free(moert_layout_t *layout) {
  free(layout->ranks);
  layout->ranks = NULL;
}

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

static void check(int rc, const char *what) {
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
  if (!already) {
    if (MPI_Init(argc, argv) != MPI_SUCCESS)
      return moert_status_make(MOERT_UNAVAILABLE, "MPI_Init failed");
    gInitialized = 1;
  }
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
    check(MPI_Comm_split(MPI_COMM_WORLD, colors[g], gRank, &gComms[g]),
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
    gYieldWait = 1;
  else if (wait && !strcmp(wait, "spin"))
    gYieldWait = 0;
  else if (wait && *wait)
    return moert_status_make(MOERT_INVALID_ARGUMENT,
                             "MOERT_WAIT=%s: expected spin or yield", wait);
  else
    gYieldWait = cores > 0 && onNode > cores;
  return NULL;
}

/* Completes `request`, yielding the core between tests. */
static int waitYielding(MPI_Request *request, MPI_Status *status) {
  for (unsigned tries = 0;; ++tries) {
    int done = 0;
    int rc = MPI_Test(request, &done, status);
    if (rc != MPI_SUCCESS || done)
      return rc;
    if (tries < 1000) {
      sched_yield();
    } else {
      struct timespec pause = {0, 20000}; /* 20 us */
      nanosleep(&pause, NULL);
    }
  }
}

/* Runs a collective: blocking, or started non-blocking and waited for
 * yielding (MOERT_WAIT). */
#define RUN_COLLECTIVE(blocking, nonblocking, what)                            \
  do {                                                                         \
    if (gYieldWait) {                                                          \
      MPI_Request request_;                                                    \
      check(nonblocking, what);                                                \
      check(waitYielding(&request_, MPI_STATUS_IGNORE), what);                 \
    } else {                                                                   \
      check(blocking, what);                                                   \
    }                                                                          \
  } while (0)

int moert_comm_rank(void) { return gRank; }
int moert_comm_local_rank(void) { return gLocalRank; }
int moert_comm_size(void) { return gSize; }
moert_coords_t moert_comm_coords(void) { return gCoords; }

void moert_comm_finalize(void) {
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
    RUN_COLLECTIVE(MPI_Barrier(MPI_COMM_WORLD),
                   MPI_Ibarrier(MPI_COMM_WORLD, &request_), "Barrier");
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
                                moert_memref1d_f32_t *out, int *size) {
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
  count(kind, group, sent * (long long)sizeof(float));
  if (comm == MPI_COMM_NULL || s == 1) {
    memmove(data(out), data(in), (size_t)(m < n ? m : n) * sizeof(float));
    return MPI_COMM_NULL;
  }
  return comm;
}

void _mlir_ciface_moert_all_reduce_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  int size;
  MPI_Comm comm = beginCollective(MOERT_ALL_REDUCE, group, in, out, &size);
#ifdef MOERT_NCCL
  if (comm != MPI_COMM_NULL)
    moertNcclAllReduce(group, comm, data(in), data(out), (size_t)in->sizes[0]);
  return;
#endif
  if (comm != MPI_COMM_NULL)
    RUN_COLLECTIVE(MPI_Allreduce(data(in), data(out), (int)in->sizes[0],
                                 MPI_FLOAT, MPI_SUM, comm),
                   MPI_Iallreduce(data(in), data(out), (int)in->sizes[0],
                                  MPI_FLOAT, MPI_SUM, comm, &request_),
                   "Allreduce");
}

void _mlir_ciface_moert_all_gather_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  int size;
  MPI_Comm comm = beginCollective(MOERT_ALL_GATHER, group, in, out, &size);
  int n = (int)in->sizes[0];
#ifdef MOERT_NCCL
  if (comm != MPI_COMM_NULL)
    moertNcclAllGather(group, comm, data(in), data(out), (size_t)n);
  return;
#endif
  if (comm != MPI_COMM_NULL)
    RUN_COLLECTIVE(
        MPI_Allgather(data(in), n, MPI_FLOAT, data(out), n, MPI_FLOAT, comm),
        MPI_Iallgather(data(in), n, MPI_FLOAT, data(out), n, MPI_FLOAT, comm,
                       &request_),
        "Allgather");
}

void _mlir_ciface_moert_all_to_all_f32(moert_memref1d_f32_t *in,
                                       moert_memref1d_f32_t *out,
                                       int32_t group) {
  int size;
  MPI_Comm comm = beginCollective(MOERT_ALL_TO_ALL, group, in, out, &size);
  if (comm == MPI_COMM_NULL)
    return;
  int chunk = (int)(in->sizes[0] / size);
#ifdef MOERT_NCCL
  moertNcclAllToAll(group, comm, data(in), data(out), (size_t)chunk, size);
  return;
#endif
  RUN_COLLECTIVE(MPI_Alltoall(data(in), chunk, MPI_FLOAT, data(out), chunk,
                              MPI_FLOAT, comm),
                 MPI_Ialltoall(data(in), chunk, MPI_FLOAT, data(out), chunk,
                               MPI_FLOAT, comm, &request_),
                 "Alltoall");
}

void _mlir_ciface_moert_reduce_scatter_f32(moert_memref1d_f32_t *in,
                                           moert_memref1d_f32_t *out,
                                           int32_t group) {
  int size;
  MPI_Comm comm = beginCollective(MOERT_REDUCE_SCATTER, group, in, out, &size);
#ifdef MOERT_NCCL
  if (comm != MPI_COMM_NULL)
    moertNcclReduceScatter(group, comm, data(in), data(out),
                           (size_t)out->sizes[0]);
  return;
#endif
  if (comm != MPI_COMM_NULL)
    RUN_COLLECTIVE(
        MPI_Reduce_scatter_block(data(in), data(out), (int)out->sizes[0],
                                 MPI_FLOAT, MPI_SUM, comm),
        MPI_Ireduce_scatter_block(data(in), data(out), (int)out->sizes[0],
                                  MPI_FLOAT, MPI_SUM, comm, &request_),
        "Reduce_scatter_block");
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
  RUN_COLLECTIVE(
      MPI_Gather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, 0, comm),
      MPI_Igather(in, (int)n, MPI_FLOAT, out, (int)n, MPI_FLOAT, 0, comm,
                  &request_),
      "Gather");
}

void moert_comm_broadcast_i64(int64_t *buffer, long n, int root) {
  if (!gUsingMpi)
    return;
  count(MOERT_BROADCAST, MOERT_GROUP_WORLD,
        (long long)n * (long long)sizeof(int64_t));
  RUN_COLLECTIVE(
      MPI_Bcast(buffer, (int)n, MPI_INT64_T, root, MPI_COMM_WORLD),
      MPI_Ibcast(buffer, (int)n, MPI_INT64_T, root, MPI_COMM_WORLD, &request_),
      "Bcast");
}

/* Completes a point-to-point request the way the collectives wait. */
static void finish(MPI_Request *request, MPI_Status *status, const char *what) {
  if (gYieldWait)
    check(waitYielding(request, status), what);
  else
    check(MPI_Wait(request, status), what);
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
  MPI_Request request;
  MPI_Status status;
  if (sending)
    check(MPI_Isend(data(buffer), (int)n, MPI_FLOAT, (int)peer, 0, comm,
                    &request),
          "Isend");
  else
    check(MPI_Irecv(data(buffer), (int)n, MPI_FLOAT, (int)peer, 0, comm,
                    &request),
          "Irecv");
  finish(&request, &status, sending ? "Isend" : "Irecv");
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
  MPI_Request request;
  if (gRank == from) {
    count(MOERT_SEND, MOERT_GROUP_WORLD,
          (long long)n * (long long)sizeof(float));
    check(MPI_Isend(buffer, (int)n, MPI_FLOAT, to, 1, MPI_COMM_WORLD, &request),
          "Isend");
    finish(&request, MPI_STATUS_IGNORE, "Isend");
  } else if (gRank == to) {
    count(MOERT_RECV, MOERT_GROUP_WORLD,
          (long long)n * (long long)sizeof(float));
    check(
        MPI_Irecv(buffer, (int)n, MPI_FLOAT, from, 1, MPI_COMM_WORLD, &request),
        "Irecv");
    finish(&request, MPI_STATUS_IGNORE, "Irecv");
  }
}
