# -*- Python -*-
# lit configuration of the moe-mlir test suite.

import os

import lit.formats
from lit.llvm import llvm_config
from lit.llvm.subst import ToolSubst

config.name = "MOE"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py",
                   "lit.site.cfg.py", "Inputs"]

config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.moe_obj_root, "test")

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%moe_src_root", config.moe_src_root))
config.substitutions.append(("%moe_obj_root", config.moe_obj_root))
# lit itself runs on an interpreter that has numpy and torch (Debian's
# /usr/bin/python3); tests that need them use %python.
config.substitutions.append(("%python", config.python_executable))
# MLIR's runner utilities (printMemref*), for tests run with mlir-runner.
config.substitutions.append(
    ("%mlir_lib_dir", os.path.join(os.path.dirname(config.llvm_tools_dir), "lib")))

llvm_config.use_default_substitutions()
llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.with_environment("FILECHECK_OPTS", "-enable-var-scope")
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.moe_tools_dir, config.llvm_tools_dir]
tools = ["moe-opt", "moe-compile", "mlir-opt", "mlir-runner", "split-file"]
if config.moe_build_runtime:
    tools += ["moert-unittests", "moert-comm-test"]
    config.available_features.add("runtime")
llvm_config.add_tool_substitutions(tools, tool_dirs)

# The CUDA target: `cuda-toolkit` when the build has libmoert_cuda (the
# toolkit was found; executables link), `cuda` when an NVIDIA GPU is usable
# here (GPU execution tests, test/Integration).
import os
import subprocess
if config.moe_build_runtime and os.path.exists(
        os.path.join(config.moe_obj_root, "lib", "libmoert_cuda.so")):
    config.available_features.add("cuda-toolkit")
try:
    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                         timeout=30)
    if smi.returncode == 0 and "GPU" in smi.stdout:
        config.available_features.add("cuda")
except (OSError, subprocess.SubprocessError):
    pass

# Multi-rank tests run on CPU ranks under MPICH's mpiexec.
import shutil
if shutil.which("mpiexec"):
    config.available_features.add("mpi")
# MPI ranks oversubscribe the cores: one OpenBLAS thread per rank.
config.environment["OPENBLAS_NUM_THREADS"] = "1"

# Hugging Face transformers (the outside reference of generation tests),
# installed by utils/bootstrap.sh under build/python-deps: `transformers`
# when Debian's interpreter imports it from there; %hf_pythonpath is that
# directory.
hf_deps = os.path.join(config.moe_obj_root, "python-deps")
config.substitutions.append(("%hf_pythonpath", hf_deps))
if os.path.isdir(hf_deps):
    try:
        probe = subprocess.run(
            [config.python_executable, "-c", "import transformers"],
            env=dict(os.environ, PYTHONPATH=hf_deps), capture_output=True,
            timeout=120)
        if probe.returncode == 0:
            config.available_features.add("transformers")
    except (OSError, subprocess.SubprocessError):
        pass
