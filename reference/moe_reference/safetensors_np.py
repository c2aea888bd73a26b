"""Reading and writing the safetensors format with NumPy only.

The format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
unsigned header length N, N bytes of UTF-8 JSON, then the data section.  The
JSON maps each tensor name to ``{"dtype", "shape", "data_offsets": [b, e]}``
(offsets relative to the start of the data section), plus an optional
``"__metadata__"`` map of strings to strings.  Data are little-endian and
row-major.

``load`` validates strictly, as the Rust ``safetensors`` crate does: every
tensor's byte range must lie inside the data section, ranges must not overlap,
their sizes must match dtype x shape, and together they must cover the data
section exactly (no holes, no trailing bytes).  Every failure raises
``SafetensorsError`` whose message names the file and, where there is one, the
tensor.

Supported dtypes: F32, F16, BF16, I32, I64.  NumPy has no bfloat16: ``load``
returns BF16 tensors widened (exactly) to float32; ``save`` rounds float data
to BF16 round-to-nearest-even (bf16 is the top 16 bits of an IEEE f32).
"""

import json
import os
import struct

import numpy as np

__all__ = ["SafetensorsError", "load", "load_file", "save", "DTYPES",
           "f32_to_bf16_bits", "bf16_bits_to_f32", "MAX_HEADER_BYTES"]

MAX_HEADER_BYTES = 100 * 1024 * 1024  # 100 MiB, as in the reference crate

# safetensors dtype name -> (little-endian numpy storage dtype, element size)
DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # raw bits; widened to f32 on load
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}

_NATIVE_TO_ST = {
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int32"): "I32",
    np.dtype("int64"): "I64",
}


class SafetensorsError(ValueError):
    """A malformed safetensors file, or tensors that cannot be saved."""


def _err(path, msg, tensor=None):
    where = "%s: " % path
    if tensor is not None:
        where += "tensor '%s': " % tensor
    return SafetensorsError(where + msg)


def f32_to_bf16_bits(a):
    """float32 array -> uint16 bf16 bits, rounding to nearest even (NaN kept NaN)."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    bits = a.view(np.uint32).astype(np.uint64)
    rounding = ((bits >> 16) & 1) + 0x7FFF
    rounded = ((bits + rounding) >> 16).astype(np.uint16)
    nan = np.isnan(a)
    if nan.any():
        # Keep the sign, force a quiet NaN (rounding could carry into inf).
        rounded = np.where(nan, ((bits >> 16).astype(np.uint16) | 0x0040),
                           rounded).astype(np.uint16)
    return rounded


def bf16_bits_to_f32(bits):
    """uint16 bf16 bits -> float32 (exact)."""
    bits = np.ascontiguousarray(bits, dtype=np.uint16)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _no_duplicates(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise ValueError("duplicate key '%s'" % k)
        d[k] = v
    return d


def load_file(path):
    """Load ``path``; return ``(tensors, metadata, dtypes)``.

    ``tensors`` maps names to NumPy arrays (F32 -> float32, F16 -> float16,
    BF16 -> float32, I32 -> int32, I64 -> int64), in file order of their data;
    ``metadata`` is the ``__metadata__`` dict (or ``{}``); ``dtypes`` maps each
    name to its stored safetensors dtype string.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise _err(path, "cannot read file: %s" % (e.strerror or e))

    if len(blob) < 8:
        raise _err(path, "truncated file: %d bytes, need at least 8 for the "
                         "header length" % len(blob))
    (hlen,) = struct.unpack("<Q", blob[:8])
    if hlen > MAX_HEADER_BYTES:
        raise _err(path, "header too large: %d bytes (limit %d)"
                   % (hlen, MAX_HEADER_BYTES))
    if 8 + hlen > len(blob):
        raise _err(path, "truncated file: header length is %d bytes but only "
                         "%d bytes follow the length field"
                   % (hlen, len(blob) - 8))
    try:
        text = blob[8:8 + hlen].decode("utf-8")
    except UnicodeDecodeError as e:
        raise _err(path, "bad header: not valid UTF-8 (%s)" % e.reason)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise _err(path, "bad header JSON: %s" % e)
    if not isinstance(header, dict):
        raise _err(path, "bad header JSON: top level is not an object")

    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str)
            for k, v in metadata.items()):
        raise _err(path, "bad header: __metadata__ must map strings to "
                         "strings")

    data = memoryview(blob)[8 + hlen:]
    dlen = len(data)
    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _err(path, "bad header entry: not an object", name)
        for key in ("dtype", "shape", "data_offsets"):
            if key not in info:
                raise _err(path, "bad header entry: missing '%s'" % key, name)
        extra = set(info) - {"dtype", "shape", "data_offsets"}
        if extra:
            raise _err(path, "bad header entry: unknown key '%s'"
                       % sorted(extra)[0], name)
        dt = info["dtype"]
        if dt not in DTYPES:
            raise _err(path, "unsupported dtype %r (supported: %s)"
                       % (dt, ", ".join(DTYPES)), name)
        shape = info["shape"]
        if not isinstance(shape, list) or not all(
                _is_int(s) and s >= 0 for s in shape):
            raise _err(path, "bad shape %r: must be a list of non-negative "
                             "integers" % (shape,), name)
        offs = info["data_offsets"]
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(_is_int(o) for o in offs)):
            raise _err(path, "bad data_offsets %r: must be [begin, end] "
                             "integers" % (offs,), name)
        b, e = offs
        if b < 0 or e < b:
            raise _err(path, "bad data_offsets [%d, %d]: need 0 <= begin <= "
                             "end" % (b, e), name)
        if e > dlen:
            raise _err(path, "data_offsets [%d, %d] out of range: the data "
                             "section has only %d bytes (truncated file?)"
                       % (b, e, dlen), name)
        nbytes = int(np.prod(shape, dtype=np.int64)) * DTYPES[dt].itemsize
        if e - b != nbytes:
            raise _err(path, "size mismatch: %s %s needs %d bytes but "
                             "data_offsets [%d, %d] span %d"
                       % (dt, shape, nbytes, b, e, e - b), name)
        entries.append((b, e, name, dt, tuple(shape)))

    # No overlaps and no holes: sorted by begin, each range starts where the
    # previous one ended (zero-sized tensors may sit anywhere in sequence).
    entries.sort(key=lambda t: (t[0], t[1], t[2]))
    pos = 0
    prev = None
    for b, e, name, _, _ in entries:
        if b < pos:
            raise _err(path, "data_offsets [%d, %d] overlap tensor '%s' "
                             "(which ends at %d)" % (b, e, prev, pos), name)
        if b > pos:
            raise _err(path, "hole in the data section: bytes [%d, %d) "
                             "belong to no tensor" % (pos, b), name)
        if e > pos:
            pos, prev = e, name
    if pos != dlen:
        raise _err(path, "%d trailing bytes: the data section has %d bytes "
                         "but the tensors cover only %d"
                   % (dlen - pos, dlen, pos))

    tensors, dtypes = {}, {}
    for b, e, name, dt, shape in entries:
        arr = np.frombuffer(data[b:e], dtype=DTYPES[dt]).reshape(shape)
        if dt == "BF16":
            arr = bf16_bits_to_f32(arr).reshape(shape)
        else:
            arr = arr.astype(DTYPES[dt].newbyteorder("="), copy=True)
        tensors[name] = arr
        dtypes[name] = dt
    return tensors, metadata, dtypes


def load(path):
    """Load ``path`` and return ``{name: np.ndarray}`` (see ``load_file``)."""
    return load_file(path)[0]


def save(path, tensors, metadata=None, dtype=None):
    """Write ``tensors`` ({name: array}) to ``path`` in safetensors format.

    ``dtype`` (None, 'F32', 'BF16' or 'F16'; case-insensitive) is the storage
    type of floating-point tensors; None keeps each array's own type (float32
    -> F32, float16 -> F16; float64 is stored as F32).  Integer tensors are
    stored as I32/I64 whatever ``dtype`` says.  ``metadata`` is an optional
    {str: str} dict.  Tensors are written sorted by name and the header is
    canonical JSON padded to a multiple of 8 bytes, so equal inputs give
    byte-identical files.
    """
    path = os.fspath(path)
    if dtype is not None:
        dtype = str(dtype).upper()
        if dtype not in ("F32", "BF16", "F16"):
            raise _err(path, "cannot save as dtype %r (use F32, BF16 or F16)"
                       % dtype)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in metadata.items()):
            raise _err(path, "metadata must map strings to strings")

    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if not isinstance(name, str) or name == "__metadata__" or not name:
            raise _err(path, "invalid tensor name %r" % (name,))
        a = np.asarray(tensors[name])
        kind = a.dtype.kind
        if kind == "f":
            if a.dtype == np.float64:
                a = a.astype(np.float32)
            st = dtype or _NATIVE_TO_ST.get(a.dtype)
            if st is None:
                raise _err(path, "unsupported array dtype %s" % a.dtype, name)
            if st == "BF16":
                raw = f32_to_bf16_bits(a.astype(np.float32))
            else:
                raw = a.astype(DTYPES[st])
        elif kind in "iu":
            if a.dtype.itemsize <= 4 and (kind == "i" or a.dtype.itemsize < 4):
                st = "I32"
            else:
                st = "I64"
                if kind == "u" and a.size and a.max() > np.iinfo(np.int64).max:
                    raise _err(path, "uint64 values exceed int64", name)
            raw = a.astype(DTYPES[st])
        else:
            raise _err(path, "unsupported array dtype %s" % a.dtype, name)
        raw = np.ascontiguousarray(raw).tobytes()
        header[name] = {"dtype": st, "shape": [int(s) for s in a.shape],
                        "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp%d" % os.getpid()
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for c in chunks:
                f.write(c)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise _err(path, "cannot write file: %s" % (e.strerror or e))
