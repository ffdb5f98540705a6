#!/bin/bash
# Issue 20, part 3: ssl_jax beside the PyTorch peer (lightly 1.6) on one GPU, in one device call:
# ResNet-18 (CIFAR stem), full Fashion-MNIST, batch 512, 30 epochs, kNN and linear probe by the same
# ssl_jax code, written to $OUT/fashion_mnist_resnet18.{md,json} with the device and library versions.
#
# Budget: one method (ssl_jax ~1.5 min with compilation and evaluation, the peer ~4.5 min: it needed
# 260 s on an H100, input-bound at ~13.8k views/s on 16 CPU workers) fits the 8 minutes a call may take
# of the 15-minute device budget; run SimCLR first, BYOL in the second call (or the rerun).
#
# Prepared here, once (the wheels the GPU image lacks, and the data: ../shared does not travel):
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl ml-collections==1.1.0 lightly==1.6.0
#   mkdir -p .data/fashion-mnist && cp ../shared/data/fashion-mnist/*.gz .data/fashion-mnist/
# Then, through the device tool:
#   run(command="bash benchmarks/gpu_compare_peer.sh simclr", carry=[".whl", ".data"], timeout_s=540)
#   run(command="bash benchmarks/gpu_compare_peer.sh byol", carry=[".whl", ".data"], timeout_s=540)
# and copy the returned files into benchmarks/results/ (the second call's .md holds both methods only
# if the first call's .json is carried back in as .data/fashion_mnist_resnet18.json; see --append).
#
# On a CPU with tiny budgets (checks the whole command without a GPU):
#   OUT=/tmp/out EPOCHS=0.05 PEER_WORKERS=2 VARIANT=small_cnn DATA_DIR=../shared/data/fashion-mnist \
#       bash benchmarks/gpu_compare_peer.sh simclr
set -euo pipefail
methods=${1:-simclr}
epochs=${EPOCHS:-30}
out=${OUT:-runs/gpu_compare_peer}
mkdir -p "$out"
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1 && ! python3 -c "import lightly, ml_collections" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
data_dir=${DATA_DIR:-.data/fashion-mnist}
variant=${VARIANT-}  # '': the configs' ResNet-18 recipe; small_cnn for a CPU check
name=fashion_mnist_$([ "$variant" = small_cnn ] && echo small_cnn || echo resnet18)
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import jax, flax, optax, torch, torchvision, lightly; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'lightly', lightly.__version__)"
} | tee "$out/device.txt"
append=()
if [ -f ".data/$name.json" ]; then
  cp ".data/$name.json" "$out/$name.json"
  append=(--append)
fi
python3 benchmarks/reproduce.py --compare-peer --variant "$variant" --data-dir "$data_dir" \
    --methods "$methods" --epochs "$epochs" --batch-size 512 --protocols knn,linear \
    --baseline "${append[@]}" --workdir /tmp/runs --output "$out/$name.md" \
    "--peer-arg=--workers=${PEER_WORKERS:-16}" 2>&1 | tee "$out/log.txt"
