#!/usr/bin/env python3
"""Summarize a trace written by a compiled model's `--trace FILE`.

    utils/trace-summary.py trace.json [--check-overlap all_to_all]

Per rank (one line each), in milliseconds:

* compute       -- time inside matrix products (their union);
* communication -- time with a collective in flight (the union of the
                   collectives' spans, start to completion);
* hidden        -- the part of that time the rank did not spend waiting:
                   communication that ran behind other work;
* stalls        -- time the rank waited for collectives;
* and the hidden fraction, hidden / communication.

With --layers it then prints, per rank, each decoder layer's total time over
the run, and the attention's and feed-forward blocks' totals over all layers
(the "layers" track: the spans between the marks moe-trace-layers puts where
a layer or its part begins; a layer whose ops a schedule interleaves with
another's has several spans per pass).

With --check-overlap KIND it also counts, per rank, the matrix products that
lie entirely inside a span of a KIND collective, and exits 1 unless every
rank has one. The file must be valid JSON with a process per rank and the
tracks runtime/include/moert/trace.h describes; anything else is an error.
"""

import argparse
import json
import sys


def fail(message):
    sys.stdout.flush()
    print("trace-summary.py: error: %s" % message, file=sys.stderr)
    sys.exit(1)


def union(spans):
    """Total length of the union of [begin, end) spans."""
    total, end = 0.0, None
    for b, e in sorted(spans):
        if end is None or b > end:
            total += e - b
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def intersect(spans, others):
    """Length of (union of spans) ∩ (union of others)."""
    def merged(xs):
        out = []
        for b, e in sorted(xs):
            if out and b <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([b, e])
        return out
    a, b = merged(spans), merged(others)
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            total += hi - lo
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def load(path):
    try:
        with open(path) as f:
            trace = json.load(f)
    except OSError as e:
        fail("cannot read %s: %s" % (path, e.strerror))
    except ValueError as e:
        fail("%s is not valid JSON: %s" % (path, e))
    if not isinstance(trace, dict) or not isinstance(
            trace.get("traceEvents"), list):
        fail("%s has no 'traceEvents' list" % path)
    ranks = {}
    pending = {}
    for ev in trace["traceEvents"]:
        pid, ph = ev.get("pid"), ev.get("ph")
        if not isinstance(pid, int):
            fail("an event without an integer pid: %r" % (ev,))
        r = ranks.setdefault(pid, {"compute": [], "comm": [], "stall": [],
                                   "layer": [], "named": False})
        if ph == "M":
            if ev.get("name") == "process_name":
                r["named"] = True
            continue
        if ph == "X":
            span = (ev["ts"], ev["ts"] + ev["dur"], ev.get("name", ""))
            if ev.get("cat") == "compute":
                r["compute"].append(span)
            elif ev.get("cat") == "wait":
                r["stall"].append(span)
            elif ev.get("cat") == "layer":
                r["layer"].append(span)
        elif ph == "b":
            pending[(pid, ev["id"])] = (ev["ts"], ev.get("name", ""))
        elif ph == "e":
            begin = pending.pop((pid, ev["id"]), None)
            if begin is None:
                fail("rank %d: a collective ends that never began (id %r)"
                     % (pid, ev["id"]))
            r["comm"].append((begin[0], ev["ts"], begin[1]))
    if pending:
        fail("%d collectives began but never ended" % len(pending))
    for pid, r in ranks.items():
        if not r["named"]:
            fail("rank %d has events but no process_name" % pid)
    return ranks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--ranks", type=int, default=0,
                    help="fail unless the trace has exactly these ranks")
    ap.add_argument("--check-overlap", metavar="KIND", default=None,
                    help="fail unless every rank computes inside a KIND "
                         "collective (e.g. all_to_all)")
    ap.add_argument("--layers", action="store_true",
                    help="print each decoder layer's total time per rank")
    a = ap.parse_args()
    ranks = load(a.trace)
    if a.ranks and sorted(ranks) != list(range(a.ranks)):
        fail("expected ranks 0..%d, found %s" % (a.ranks - 1, sorted(ranks)))
    ok = True
    totals = [0.0, 0.0]
    for pid in sorted(ranks):
        r = ranks[pid]
        spans = lambda xs: [(b, e) for b, e, _ in xs]  # noqa: E731
        compute = union(spans(r["compute"])) / 1e3
        comm = union(spans(r["comm"])) / 1e3
        stalled = intersect(spans(r["comm"]), spans(r["stall"])) / 1e3
        stalls = union(spans(r["stall"])) / 1e3
        hidden = comm - stalled
        totals[0] += comm
        totals[1] += hidden
        line = ("rank %d: compute %.3f ms, communication %.3f ms, hidden "
                "%.3f ms (%.0f%%), stalls %.3f ms, %d collectives"
                % (pid, compute, comm, hidden,
                   100.0 * hidden / comm if comm else 0.0, stalls,
                   len(r["comm"])))
        if a.check_overlap:
            inside = 0
            kinds = [(b, e) for b, e, n in r["comm"]
                     if n.split(" ")[0] == a.check_overlap]
            for b, e, _ in r["compute"]:
                if any(cb <= b and e <= ce for cb, ce in kinds):
                    inside += 1
            line += ", %d products inside %s" % (inside, a.check_overlap)
            ok &= inside > 0
        print(line)
    print("all ranks: communication %.3f ms, hidden %.3f ms (%.0f%%)"
          % (totals[0], totals[1],
             100.0 * totals[1] / totals[0] if totals[0] else 0.0))
    if a.layers:
        for pid in sorted(ranks):
            per, parts = {}, {}
            for b, e, name in ranks[pid]["layer"]:
                words = name.split(" ")  # "layer L [attention|feed-forward]"
                layer = int(words[1])
                per[layer] = per.get(layer, 0.0) + e - b
                if len(words) > 2:
                    parts[words[2]] = parts.get(words[2], 0.0) + e - b
            if not per:
                fail("rank %d has no layer spans (a program built without "
                     "moe-trace-layers?)" % pid)
            print("rank %d layers (ms): %s%s" % (
                pid, ", ".join("%d %.3f" % (n, per[n] / 1e3)
                               for n in sorted(per)),
                "".join("; %s %.3f" % (p, parts[p] / 1e3)
                        for p in ("attention", "feed-forward")
                        if p in parts)))
    if not ok:
        fail("a rank computes nothing inside any %s" % a.check_overlap)


if __name__ == "__main__":
    main()
