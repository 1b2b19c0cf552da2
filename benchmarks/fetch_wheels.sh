#!/usr/bin/env bash
# Download, on a machine with pip access, the wheels a bare GPU machine image may lack, into
# .whl/ at the repository root (git-ignored). benchmarks/gpu_check.sh installs them there.
#
# A typical CUDA image with numpy, sympy, h5py, PyYAML, scipy, pytest, CuPy (CUDA 13) and JAX
# lacks pydantic, which solver.config needs: pydantic,
# its compiled core for CPython 3.12 on x86-64, and their pure-Python dependencies.
# typing_extensions is there, possibly older than pydantic 2.13 wants, so it travels too.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
    pydantic==2.13.4 pydantic_core==2.46.4 annotated_types==0.7.0 typing_inspection==0.4.2 \
    typing_extensions==4.15.0
ls -l .whl
