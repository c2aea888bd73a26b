#!/usr/bin/env -S /usr/bin/python3
"""Write small .npy arrays with known errors for the compare.py tests.

    make_arrays.py OUTDIR

ref.npy         float64 [2, 3], max|ref| = 2
close.npy       ref with one element off by 2e-6   (rel err 1e-6)
far.npy         ref with one element off by 2e-4   (rel err 1e-4)
double.npy      2 * ref                            (vs ref: abs 2, rel 1;
                                                    ref vs it: abs 2, rel 0.5)
f32.npy         ref as float32                     (exact)
nan.npy         ref with a NaN
shape.npy       zeros [3, 2]
zeros.npy       zeros [2, 3]
text.npy        not an .npy file
"""

import os
import sys

import numpy as np


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    ref = np.array([[2.0, -1.0, 0.5], [0.25, 0.0, 1.0]])
    arrays = {"ref": ref, "f32": ref.astype(np.float32), "double": 2 * ref,
              "shape": np.zeros((3, 2)), "zeros": np.zeros((2, 3))}
    close = ref.copy()
    close[1, 2] += 2e-6
    far = ref.copy()
    far[0, 1] -= 2e-4
    nan = ref.copy()
    nan[1, 1] = np.nan
    arrays.update(close=close, far=far, nan=nan)
    for name, a in arrays.items():
        np.save(os.path.join(out, name + ".npy"), a, allow_pickle=False)
    with open(os.path.join(out, "text.npy"), "w") as f:
        f.write("not numpy\n")


if __name__ == "__main__":
    main()
