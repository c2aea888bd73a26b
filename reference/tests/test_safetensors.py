#!/usr/bin/env -S /usr/bin/python3
"""Unit checks of moe_reference.safetensors_np (NumPy only; no torch).

    test_safetensors.py roundtrip KIND... TMPDIR  # f32 bf16 f16 int metadata
    test_safetensors.py bad OUTDIR      # write one malformed file per error
    test_safetensors.py same-except A B NAME...   # A, B equal but for NAMEs

Each check prints "PASS <name>" or raises (non-zero exit).
"""

import json
import os
import struct
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from moe_reference import safetensors_np as st  # noqa: E402


def _tensors(rng):
    return {
        "a.weight": rng.standard_normal((3, 5)).astype(np.float32),
        "b": rng.standard_normal((7,)).astype(np.float32),
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "z.big": (rng.standard_normal((4, 4, 2)) * 1e3).astype(np.float32),
    }


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def roundtrip(kind, tmp):
    os.makedirs(tmp, exist_ok=True)
    rng = np.random.Generator(np.random.PCG64(7))
    path = os.path.join(tmp, "rt-%s.safetensors" % kind)
    if kind == "f32":
        t = _tensors(rng)
        st.save(path, t)
        back, meta, dtypes = st.load_file(path)
        check(set(back) == set(t), "names differ")
        for n in t:
            check(dtypes[n] == "F32", "%s stored as %s" % (n, dtypes[n]))
            check(back[n].dtype == np.float32 and back[n].shape == t[n].shape,
                  "%s dtype/shape" % n)
            check(np.array_equal(back[n], t[n]), "%s values" % n)
        # Storing as F32 explicitly gives the same bytes.
        path2 = path + ".2"
        st.save(path2, t, dtype="F32")
        check(open(path, "rb").read() == open(path2, "rb").read(),
              "dtype=F32 changed the bytes")
    elif kind == "bf16":
        t = _tensors(rng)
        t["special"] = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf,
                                 1.0 + 2 ** -8, 1.0 + 3 * 2 ** -8,
                                 3.4e38], dtype=np.float32)
        st.save(path, t, dtype="bf16")
        back, _, dtypes = st.load_file(path)
        for n in t:
            check(dtypes[n] == "BF16", "%s stored as %s" % (n, dtypes[n]))
            b = back[n]
            check(b.dtype == np.float32 and b.shape == t[n].shape,
                  "%s dtype/shape" % n)
            # bf16 keeps 8 significant bits: round-to-nearest is within
            # half an ulp, i.e. relative error <= 2^-8.
            ref = t[n].astype(np.float64)
            fin = np.isfinite(ref) & (np.abs(ref) < 3.3e38)  # no overflow
            err = np.abs(b[fin] - ref[fin])
            check(np.all(err <= np.abs(ref[fin]) * 2.0 ** -8), "%s rounding" % n)
            # low 16 bits of every value are zero (bf16 = top half of f32)
            check(not np.any(b.view(np.uint32) & 0xFFFF), "%s low bits" % n)
        sp = back["special"]
        check(np.array_equal(sp[:6], t["special"][:6]), "exact values")
        check(sp[6] == 1.0, "tie 1+2^-8 rounds to even (1.0), got %r" % sp[6])
        check(sp[7] == 1.0 + 2 ** -6,
              "tie 1+3*2^-8 rounds to even (1+2^-6), got %r" % sp[7])
        check(np.isinf(sp[8]), "3.4e38 rounds up to inf in bf16, got %r" % sp[8])
        nan_bits = st.f32_to_bf16_bits(np.array([np.nan], np.float32))
        check(np.isnan(st.bf16_bits_to_f32(nan_bits))[0], "NaN stays NaN")
        path2 = path + ".2"
        st.save(path2, back, dtype="BF16")
        check(open(path, "rb").read() == open(path2, "rb").read(),
              "bf16 -> f32 -> bf16 is not the identity")
    elif kind == "f16":
        t = _tensors(rng)
        del t["z.big"]  # keep inside the f16 range
        st.save(path, t, dtype="F16")
        back, _, dtypes = st.load_file(path)
        for n in t:
            check(dtypes[n] == "F16", "%s stored as %s" % (n, dtypes[n]))
            check(back[n].dtype == np.float16, "%s loads as float16" % n)
            check(np.array_equal(back[n], t[n].astype(np.float16)),
                  "%s values" % n)
        # native float16 arrays are stored as F16 without a dtype argument
        st.save(path + ".2", {"h": t["b"].astype(np.float16)})
        check(st.load_file(path + ".2")[2]["h"] == "F16", "native f16")
    elif kind == "int":
        t = {"i32": np.arange(-5, 7, dtype=np.int32).reshape(3, 4),
             "i64": np.array([-(2 ** 40), 0, 2 ** 62], dtype=np.int64),
             "f": np.ones(2, np.float32)}
        st.save(path, t, dtype="bf16")  # dtype applies to floats only
        back, _, dtypes = st.load_file(path)
        check(dtypes == {"i32": "I32", "i64": "I64", "f": "BF16"},
              "dtypes %r" % dtypes)
        check(back["i32"].dtype == np.int32
              and np.array_equal(back["i32"], t["i32"]), "i32")
        check(back["i64"].dtype == np.int64
              and np.array_equal(back["i64"], t["i64"]), "i64")
    elif kind == "metadata":
        t = {"x": np.ones((2, 2), np.float32)}
        meta = {"format": "pt", "note": "h\u00e9llo"}
        st.save(path, t, metadata=meta)
        back, m, _ = st.load_file(path)
        check(m == meta, "metadata %r" % m)
        # header layout: u64 length, JSON padded with spaces to 8 bytes
        blob = open(path, "rb").read()
        (n,) = struct.unpack("<Q", blob[:8])
        check(n % 8 == 0, "header not 8-aligned")
        hdr = json.loads(blob[8:8 + n])
        check(hdr["x"] == {"dtype": "F32", "shape": [2, 2],
                           "data_offsets": [0, 16]}, "header %r" % hdr)
        check(len(blob) == 8 + n + 16, "file size")
        # bad metadata is refused when saving
        try:
            st.save(path, t, metadata={"k": 1})
        except st.SafetensorsError as e:
            check("metadata" in str(e), str(e))
        else:
            raise AssertionError("non-string metadata accepted")
    else:
        raise SystemExit("unknown roundtrip kind %r" % kind)
    print("PASS roundtrip-%s" % kind)


def _file(path, header, data, hlen=None):
    text = header if isinstance(header, bytes) else \
        json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text) if hlen is None else hlen))
        f.write(text)
        f.write(data)


def bad(outdir):
    """One malformed file per validation error, named after the error."""
    os.makedirs(outdir, exist_ok=True)
    p = lambda n: os.path.join(outdir, n + ".safetensors")  # noqa: E731
    f32x4 = {"dtype": "F32", "shape": [4]}
    with open(p("truncated-length"), "wb") as f:
        f.write(b"\x10\x00\x00")
    _file(p("truncated-header"), b'{"a": {"dtype": "F32"', b"", hlen=4096)
    _file(p("header-too-large"), b"{}", b"", hlen=100 * 1024 * 1024 + 1)
    _file(p("bad-json"), b'{"a": [1, 2,}   ', b"")
    _file(p("not-object"), b"[1, 2, 3]", b"")
    _file(p("out-of-range"), {"w": dict(f32x4, data_offsets=[0, 16])},
          b"\0" * 8)
    _file(p("overlap"), {"a": dict(f32x4, data_offsets=[0, 16]),
                         "b": dict(f32x4, data_offsets=[8, 24])}, b"\0" * 24)
    _file(p("size-mismatch"), {"w": {"dtype": "F32", "shape": [3],
                                     "data_offsets": [0, 16]}}, b"\0" * 16)
    _file(p("hole"), {"a": dict(f32x4, data_offsets=[0, 16]),
                      "b": dict(f32x4, data_offsets=[20, 36])}, b"\0" * 36)
    _file(p("trailing"), {"a": dict(f32x4, data_offsets=[0, 16])},
          b"\0" * 20)
    _file(p("bad-dtype"), {"a": {"dtype": "F64", "shape": [2],
                                 "data_offsets": [0, 16]}}, b"\0" * 16)
    _file(p("bad-shape"), {"a": {"dtype": "F32", "shape": [-1, 4],
                                 "data_offsets": [0, 16]}}, b"\0" * 16)
    _file(p("bad-metadata"), {"__metadata__": {"n": 3},
                              "a": dict(f32x4, data_offsets=[0, 16])},
          b"\0" * 16)
    _file(p("duplicate"), b'{"a": {"dtype": "F32", "shape": [1], '
                          b'"data_offsets": [0, 4]}, "a": {"dtype": "F32", '
                          b'"shape": [1], "data_offsets": [4, 8]}}', b"\0" * 8)
    # A valid file cut in the middle of its data.
    good = p("good")
    st.save(good, {"w": np.arange(8, dtype=np.float32)})
    blob = open(good, "rb").read()
    with open(p("truncated-data"), "wb") as f:
        f.write(blob[:-6])
    print("wrote malformed safetensors files to %s" % outdir)


def same_except(a, b, names):
    """Every tensor of both files is bit-identical, except ``names``, which
    must be in exactly one of them."""
    ta, tb = st.load(a), st.load(b)
    common = sorted(set(ta) & set(tb))
    only = sorted(set(ta) ^ set(tb))
    check(only == sorted(names), "tensors in one file only: %r" % only)
    for n in common:
        check(ta[n].dtype == tb[n].dtype and ta[n].shape == tb[n].shape
              and ta[n].tobytes() == tb[n].tobytes(), "%s differs" % n)
    where = "second" if all(n in tb for n in names) else "first"
    print("PASS %d common tensors identical; only in the %s: %s"
          % (len(common), where, ", ".join(only)))


def main():
    if len(sys.argv) >= 5 and sys.argv[1] == "same-except":
        same_except(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif len(sys.argv) >= 4 and sys.argv[1] == "roundtrip":
        for kind in sys.argv[2:-1]:
            roundtrip(kind, sys.argv[-1])
    elif len(sys.argv) == 3 and sys.argv[1] == "bad":
        bad(sys.argv[2])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
