/*===- trace.c - Chrome trace events of a run, for all ranks --------------===*
 *
 * Events go to a per-rank array (up to kMaxEvents; later ones are counted
 * and dropped); moert_trace_write gathers them to rank 0 with MPI and writes
 * the JSON: a process per rank, with a compute track (complete events), a
 * communication track (async events, as collectives in flight overlap) and
 * a wait track.
 *
 *===----------------------------------------------------------------------===*/

#define _POSIX_C_SOURCE 200809L

#include "moert/trace.h"
#include "moert/comm.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Event {
  double begin, end;
  long long a, b, c;
  int kind;
} Event;

enum { kMaxEvents = 1 << 20 };

static int gEnabled;
static double gOrigin;
static Event *gEvents;
static long gNumEvents, gDropped;

double moert_trace_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int moert_trace_enabled(void) { return gEnabled; }

void moert_trace_start(void) {
  if (!gEvents)
    gEvents = malloc(sizeof(Event) * kMaxEvents);
  if (!gEvents) {
    fprintf(stderr, "warning: --trace: no memory for the events\n");
    return;
  }
  moert_comm_barrier();
  gOrigin = moert_trace_now();
  gNumEvents = gDropped = 0;
  gEnabled = 1;
}

static int32_t gLayer = -1, gGroup = -1;
static double gLayerBegin;

void moert_trace_layer(int32_t layer, int32_t group) {
  if (!gEnabled)
    return;
  double now = moert_trace_now();
  if (gLayer >= 0)
    moert_trace_record(MOERT_TRACE_LAYER, gLayerBegin, now, gLayer, gGroup, 0);
  gLayer = layer;
  gGroup = group;
  gLayerBegin = now;
}

void moert_trace_record(moert_trace_kind_t kind, double begin, double end,
                        long long a, long long b, long long c) {
  if (!gEnabled)
    return;
  if (gNumEvents == kMaxEvents) {
    ++gDropped;
    return;
  }
  Event *e = &gEvents[gNumEvents++];
  e->begin = begin - gOrigin;
  e->end = end - gOrigin;
  e->a = a;
  e->b = b;
  e->c = c;
  e->kind = (int)kind;
}

static const char *kCollectives[] = {
    "all_reduce", "all_gather", "all_to_all", "reduce_scatter",
    "gather",     "send",       "recv",       "broadcast"};
static const char *kGroups[] = {"world", "dp", "tp", "ep", "etp", "pp"};

static const char *nameOf(const char *const *table, int size, long long i) {
  return i >= 0 && i < size ? table[i] : "?";
}

static void writeEvents(FILE *f, int rank, const Event *events, long n,
                        long long *asyncId, int *first) {
  fprintf(f,
          "%s\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"args\":"
          "{\"name\":\"rank %d\"}},\n"
          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
          "\"args\":{\"name\":\"compute\"}},\n"
          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":1,"
          "\"args\":{\"name\":\"communication\"}},\n"
          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":2,"
          "\"args\":{\"name\":\"wait\"}},\n"
          "{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":3,"
          "\"args\":{\"name\":\"layers\"}}",
          *first ? "" : ",", rank, rank, rank, rank, rank, rank);
  *first = 0;
  for (long i = 0; i < n; ++i) {
    const Event *e = &events[i];
    double ts = e->begin * 1e6, dur = (e->end - e->begin) * 1e6;
    const char *coll = nameOf(kCollectives, 8, e->a);
    const char *group = nameOf(kGroups, 6, e->b);
    if (e->kind == MOERT_TRACE_COMPUTE) {
      fprintf(f,
              ",\n{\"name\":\"gemm %lldx%lldx%lld\",\"cat\":\"compute\","
              "\"ph\":\"X\",\"pid\":%d,\"tid\":0,\"ts\":%.3f,\"dur\":%.3f}",
              e->a, e->b, e->c, rank, ts, dur);
    } else if (e->kind == MOERT_TRACE_COLLECTIVE) {
      long long id = ++*asyncId;
      fprintf(f,
              ",\n{\"name\":\"%s %s\",\"cat\":\"communication\",\"ph\":\"b\","
              "\"id\":%lld,\"pid\":%d,\"tid\":1,\"ts\":%.3f,\"args\":"
              "{\"bytes\":%lld}},\n"
              "{\"name\":\"%s %s\",\"cat\":\"communication\",\"ph\":\"e\","
              "\"id\":%lld,\"pid\":%d,\"tid\":1,\"ts\":%.3f}",
              coll, group, id, rank, ts, e->c, coll, group, id, rank,
              e->end * 1e6);
    } else if (e->kind == MOERT_TRACE_LAYER) {
      const char *part = e->b == 0   ? " attention"
                         : e->b == 1 ? " feed-forward"
                                     : "";
      fprintf(f,
              ",\n{\"name\":\"layer %lld%s\",\"cat\":\"layer\","
              "\"ph\":\"X\",\"pid\":%d,\"tid\":3,\"ts\":%.3f,"
              "\"dur\":%.3f}",
              e->a, part, rank, ts, dur);
    } else {
      fprintf(f,
              ",\n{\"name\":\"wait %s %s\",\"cat\":\"wait\",\"ph\":\"X\","
              "\"pid\":%d,\"tid\":2,\"ts\":%.3f,\"dur\":%.3f}",
              coll, group, rank, ts, dur);
    }
  }
}

moert_status_t moert_trace_write(const char *path) {
  gEnabled = 0;
  int size = moert_comm_size(), rank = moert_comm_rank();
  int mpi = 0;
  MPI_Initialized(&mpi);
  int finalized = 0;
  MPI_Finalized(&finalized);
  mpi = mpi && !finalized && size > 1;
  if (gDropped)
    fprintf(stderr,
            "warning: rank %d: --trace kept the first %d events and dropped "
            "%ld\n",
            rank, kMaxEvents, gDropped);
  long long mine = gNumEvents * (long long)sizeof(Event);
  long long *bytes = NULL;
  Event *all = NULL;
  if (rank == 0)
    bytes = calloc((size_t)size, sizeof(long long));
  if (mpi) {
    MPI_Gather(&mine, 1, MPI_LONG_LONG, bytes, 1, MPI_LONG_LONG, 0,
               MPI_COMM_WORLD);
  } else if (rank == 0) {
    bytes[0] = mine;
  }
  int *counts = NULL, *displs = NULL;
  long long total = 0;
  if (rank == 0) {
    counts = calloc((size_t)size, sizeof(int));
    displs = calloc((size_t)size, sizeof(int));
    for (int r = 0; r < size; ++r) {
      displs[r] = (int)total;
      counts[r] = (int)bytes[r];
      total += bytes[r];
    }
    all = malloc(total ? (size_t)total : 1);
  }
  if (mpi)
    MPI_Gatherv(gEvents, (int)mine, MPI_BYTE, all, counts, displs, MPI_BYTE, 0,
                MPI_COMM_WORLD);
  else if (rank == 0 && mine)
    memcpy(all, gEvents, (size_t)mine);
  moert_status_t status = NULL;
  if (rank == 0) {
    FILE *f = fopen(path, "w");
    if (!f) {
      status =
          moert_status_make(MOERT_IO_ERROR, "--trace: cannot write '%s'", path);
    } else {
      long long asyncId = 0;
      int first = 1;
      fprintf(f, "{\"displayTimeUnit\":\"ms\",\"traceEvents\":[");
      for (int r = 0; r < size; ++r)
        writeEvents(f, r, (const Event *)((const char *)all + displs[r]),
                    counts[r] / (long)sizeof(Event), &asyncId, &first);
      fprintf(f, "\n]}\n");
      if (fclose(f))
        status = moert_status_make(MOERT_IO_ERROR, "--trace: cannot write '%s'",
                                   path);
    }
  }
  free(bytes);
  free(counts);
  free(displs);
  free(all);
  free(gEvents);
  gEvents = NULL;
  return status;
}
