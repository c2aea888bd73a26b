"""write_npy.py PATH DTYPE LITERAL: writes numpy.array(LITERAL, DTYPE)."""
import ast
import sys

import numpy as np

np.save(sys.argv[1], np.array(ast.literal_eval(sys.argv[3]), dtype=sys.argv[2]))
