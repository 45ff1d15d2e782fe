#!/bin/bash
# The GPU benchmarks, as one prepared script for the lent device machine (Python 3.12 with
# JAX, no TensorFlow/Keras/Ray there). Here, first: ../shared/tools/gpu-wheels.sh .whl
#   phase 1 (carry .whl):           bash benchmarks/gpu.sh install-and-augment
#   phase 2 (carry .bench-data):    bash benchmarks/gpu.sh packing [LEVELS]
#     levels 1,2,4,8 take ~6.5 min; `packing 1,4` ~3 min
# Phase 2 must follow phase 1 on the same warm machine (it reuses /tmp/site). Results land
# in $OUT (JSON; nvidia-smi utilisation in smi.csv), the figures are printed last.
set -eu
export PYTHONPATH=/tmp/site:$PWD/src KERAS_BACKEND=jax PYTHONUNBUFFERED=1
export RAY_USAGE_STATS_ENABLED=0
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
case "${1:-all}" in
  install|install-and-augment|all)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
    python3 -c "import jax, keras, ray, hyperopt; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__, 'ray', ray.__version__)"
    ;;&
  install-and-augment|all)
    # augmentation cost on the GPU: seed model, 128 px, batch 128 (the DESIGN-NOTES setting)
    python3 benchmarks/augment_throughput.py --synthetic --model seed --size 128 --batch 128 \
      --steps 60 --repeats 3 --keras-layers --out "$OUT/augment_gpu.json"
    ;;&
  packing|all)
    data=.bench-data/flowers
    [ -d "$data/train" ] || { echo "carry $data (cp -r ../shared/datasets/flowers .bench-data/)"; exit 2; }
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -lms 1000 \
      > "$OUT/smi.csv" 2>/dev/null &
    python3 benchmarks/gpu_packing.py --data "$data" --epochs 8 --levels "${2:-1,2,4,8}" \
      --out "$OUT/packing_gpu.json"
    kill %1 2>/dev/null || true
    ;;
esac
