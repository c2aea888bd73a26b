"""Shared plumbing of the command-line scripts: argument errors and user
errors end in one line on stderr and exit status 1, never a traceback."""

import argparse
import os
import sys

__all__ = ["ArgumentParser", "UserError", "run_main", "threads_from"]


class UserError(Exception):
    """Bad input found by a script itself."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error exits 1 with one line (not 2 + usage)."""

    def error(self, message):
        sys.stderr.write("%s: error: %s\n" % (self.prog, message))
        sys.exit(1)


def run_main(prog, main):
    """Call ``main()``; turn user errors into ``prog: error: ...`` + exit 1.

    ConfigError, SafetensorsError and WeightsError are ValueErrors, so they
    are caught without importing their modules (and numpy) here."""
    try:
        rc = main()
    except (UserError, ValueError, OSError) as e:
        msg = str(e).strip().replace("\n", " ")
        if isinstance(e, OSError) and e.filename is not None:
            msg = "%s: %s" % (e.filename, e.strerror or e)
        sys.stderr.write("%s: error: %s\n" % (prog, msg))
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("%s: interrupted\n" % prog)
        sys.exit(130)
    sys.exit(rc or 0)


def threads_from(value):
    """--threads N, else $MOE_REF_THREADS, else None (torch default)."""
    if value is None:
        env = os.environ.get("MOE_REF_THREADS")
        if not env:
            return None
        try:
            value = int(env)
        except ValueError:
            raise UserError("MOE_REF_THREADS must be a positive integer, got "
                            "%r" % env)
    if value <= 0:
        raise UserError("the thread count must be positive, got %d" % value)
    return value


def load_npy(path, what="array"):
    """np.load of one .npy array without pickle; UserError if it is not one."""
    import numpy as np
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise UserError("%s: not a .npy file (bad magic)" % path)
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # truncated, object arrays, ...
        raise UserError("%s: cannot read %s: %s" % (path, what, e))
    return a
