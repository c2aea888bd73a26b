/*===- comm_requests.c - collectives in flight, waited for with a watchdog ===*
 *
 * Every collective (blocking, or started by moe.async_start) is an MPI
 * non-blocking call tracked in a table of requests: completed by testing
 * (yielding the core when the node is oversubscribed, MOERT_WAIT), aborted
 * after MOERT_TIMEOUT seconds naming it, slowed to an emulated link
 * (MOERT_LINK), advanced between the matrix products
 * (moert_comm_progress), and traced (--trace).
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "comm_internal.h"
#include "moert/trace.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int moertYieldWait;

/* MOERT_TIMEOUT: seconds a rank waits for one collective before it aborts
 * the job (0: forever). */
static double gTimeout = 300;
/* MOERT_LINK=GBPS[:LATENCY_US]: an emulated link on which a collective
 * completes no earlier than latency + bytes / bandwidth after its start
 * (0: off). */
static double gLinkBytesPerSecond, gLinkLatency;

/* MOERT_PROGRESS: how collectives in flight advance while the rank
 * computes (docs/Parallelism.md, "Progress"): `calls` (the default) tests
 * them at the start of each matrix product (moert_comm_progress); `thread`
 * runs a thread that enters MPI's progress engine every 50 us
 * (MPI_THREAD_MULTIPLE); `none` leaves them to the waits. */
moert_progress_t moertProgress = MOERT_PROGRESS_CALLS;
static pthread_t gProgressThread;
static atomic_int gProgressStop;
static int gProgressRunning;

/* A collective in flight: its MPI request and what the watchdog names. A
 * handle given to compiled code is the slot's index + 1; 0 is a collective
 * that completed when it started (one member, or NCCL's stream order). */
typedef struct moert_inflight {
  MPI_Request request;
  moert_collective_t kind;
  int32_t group;
  int used;
  double earliest; /* MOERT_LINK: the emulated completion time */
  /* --trace: when it started and when a test first found it done (0: not
   * yet); bytes < 0 for the runtime's own barriers and gathers. */
  double started, doneAt;
  long long bytes;
} moert_inflight_t;
enum { kMaxInflight = 64 };
static moert_inflight_t gInflight[kMaxInflight];
static int gNumInflight;

static void sleepFor(double seconds) {
  if (seconds <= 0)
    return;
  struct timespec pause = {(time_t)seconds,
                           (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&pause, NULL);
}

/* Reads MOERT_TIMEOUT, MOERT_LINK and MOERT_PROGRESS. */
moert_status_t moertReadWaitSettings(void) {
  const char *progress = getenv("MOERT_PROGRESS");
  if (progress && *progress) {
    if (!strcmp(progress, "calls"))
      moertProgress = MOERT_PROGRESS_CALLS;
    else if (!strcmp(progress, "thread"))
      moertProgress = MOERT_PROGRESS_THREAD;
    else if (!strcmp(progress, "none"))
      moertProgress = MOERT_PROGRESS_NONE;
    else
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "MOERT_PROGRESS=%s: expected calls, thread "
                               "or none",
                               progress);
  }
  const char *timeout = getenv("MOERT_TIMEOUT");
  if (timeout && *timeout) {
    char *end = NULL;
    double value = strtod(timeout, &end);
    if (*end || value < 0)
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "MOERT_TIMEOUT=%s: expected a number of "
                               "seconds >= 0 (0: wait forever)",
                               timeout);
    gTimeout = value;
  }
  const char *link = getenv("MOERT_LINK");
  if (link && *link) {
    char *end = NULL;
    double gbps = strtod(link, &end), latencyUs = 0;
    if (*end == ':')
      latencyUs = strtod(end + 1, &end);
    if (*end || gbps <= 0 || latencyUs < 0)
      return moert_status_make(MOERT_INVALID_ARGUMENT,
                               "MOERT_LINK=%s: expected GBPS[:LATENCY_US], "
                               "e.g. 25:10 for 25 Gb/s and 10 us",
                               link);
    gLinkBytesPerSecond = gbps * 1e9 / 8;
    gLinkLatency = latencyUs * 1e-6;
  }
  return NULL;
}

int64_t moertBeginRequest(moert_collective_t kind, int32_t group,
                          long long bytes, MPI_Request **request) {
  for (int i = 0; i < kMaxInflight; ++i) {
    moert_inflight_t *slot = &gInflight[i];
    if (slot->used)
      continue;
    slot->used = 1;
    slot->kind = kind;
    slot->group = group;
    slot->request = MPI_REQUEST_NULL;
    slot->started = moert_trace_now();
    slot->doneAt = 0;
    slot->bytes = bytes;
    slot->earliest = gLinkBytesPerSecond > 0 && bytes >= 0
                         ? moert_trace_now() + gLinkLatency +
                               (double)bytes / gLinkBytesPerSecond
                         : 0;
    ++gNumInflight;
    *request = &slot->request;
    return i + 1;
  }
  moert_comm_abort("more than 64 collectives in flight");
  return 0;
}

static moert_inflight_t *slotOf(int64_t handle) {
  if (handle < 1 || handle > kMaxInflight || !gInflight[handle - 1].used) {
    char message[96];
    snprintf(message, sizeof(message), "wait on an unknown collective %lld",
             (long long)handle);
    moert_comm_abort(message);
  }
  return &gInflight[handle - 1];
}

/* Completes the collective of `handle`: tests its request, yielding the core
 * between tests when oversubscribed (MOERT_WAIT), and aborts the job when it
 * takes longer than MOERT_TIMEOUT, naming it. The emulated link
 * (MOERT_LINK) then sleeps until the collective's earliest completion. */
void moertCompleteRequest(int64_t handle, MPI_Status *status,
                          const char *what) {
  if (handle == 0)
    return;
  moert_inflight_t *slot = slotOf(handle);
  double started = 0, entered = moert_trace_now();
  for (unsigned tries = 0;; ++tries) {
    int done = 0;
    moertCommCheck(MPI_Test(&slot->request, &done, status), what);
    if (done) {
      if (slot->doneAt == 0)
        slot->doneAt = moert_trace_now();
      break;
    }
    if (moertYieldWait) {
      if (tries < 1000) {
        sched_yield();
      } else {
        struct timespec pause = {0, 20000}; /* 20 us */
        nanosleep(&pause, NULL);
      }
    }
    if (gTimeout <= 0 || (tries & 255) != 0)
      continue;
    double t = moert_trace_now();
    if (started == 0)
      started = t;
    else if (t - started > gTimeout) {
      char message[320];
      snprintf(message, sizeof(message),
               "%s on the %s group (%d ranks) has not completed after %g s "
               "(MOERT_TIMEOUT): another rank of the group stopped or died",
               moertCollectiveName(slot->kind), moertGroupName(slot->group),
               moertGroupSize(slot->group), gTimeout);
      moert_comm_abort(message);
    }
  }
  sleepFor(slot->earliest - moert_trace_now());
  if (moert_trace_enabled() && slot->bytes >= 0) {
    double left = moert_trace_now();
    double end = slot->doneAt > slot->earliest ? slot->doneAt : slot->earliest;
    moert_trace_record(MOERT_TRACE_COLLECTIVE, slot->started,
                       end < left ? end : left, slot->kind, slot->group,
                       slot->bytes);
    moert_trace_record(MOERT_TRACE_STALL, entered, left, slot->kind,
                       slot->group, slot->bytes);
  }
  slot->used = 0;
  --gNumInflight;
}

/* The progress thread: an MPI call that enters the progress engine (a
 * probe that matches nothing the runtime sends) every 50 us, so that
 * transfers advance while the rank computes; the requests stay the main
 * thread's. */
static void *progressLoop(void *unused) {
  (void)unused;
  struct timespec pause = {0, 50000};
  while (!atomic_load(&gProgressStop)) {
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag,
               MPI_STATUS_IGNORE);
    nanosleep(&pause, NULL);
  }
  return NULL;
}

moert_status_t moertStartProgressThread(void) {
  if (moertProgress != MOERT_PROGRESS_THREAD || gProgressRunning)
    return NULL;
  atomic_store(&gProgressStop, 0);
  if (pthread_create(&gProgressThread, NULL, progressLoop, NULL) != 0)
    return moert_status_make(MOERT_UNAVAILABLE,
                             "MOERT_PROGRESS=thread: cannot start the "
                             "progress thread");
  gProgressRunning = 1;
  return NULL;
}

void moertStopProgressThread(void) {
  if (!gProgressRunning)
    return;
  atomic_store(&gProgressStop, 1);
  pthread_join(gProgressThread, NULL);
  gProgressRunning = 0;
}

void moert_comm_progress(void) {
  if (!gNumInflight || moertProgress != MOERT_PROGRESS_CALLS)
    return;
  for (int i = 0; i < kMaxInflight; ++i) {
    int done = 0;
    moert_inflight_t *slot = &gInflight[i];
    if (!slot->used || slot->doneAt != 0 || slot->kind == MOERT_RECV)
      continue;
    if (slot->request != MPI_REQUEST_NULL)
      MPI_Test(&slot->request, &done, MPI_STATUS_IGNORE);
    else
      done = 1;
    if (done)
      slot->doneAt = moert_trace_now();
  }
}
