/*===- layout.c - a plan's rank layout, as the compiled program states it --===*
 *
 * Parses the "plan" and "rank" lines of a manifest (or of a file written by
 * moe-compile --explain-plan --explain-format=manifest) into a
 * moert_layout_t, and checks a plan's degrees. The runtime does not derive
 * the layout: the compiler does (PlanFacts.h).
 *
 *===----------------------------------------------------------------------===*/

#include "moert/comm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
