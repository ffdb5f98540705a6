#!/bin/bash
# Issue 19, part 3: where the SimCLR step's time goes, in one device call on an H100 or H200 (at most
# 8 minutes of device time, compilation included). Writes to $OUT (benchmarks/results/ without it):
#   device.txt              GPU, driver, jax / jaxlib / flax / optax / torch versions
#   step_attribution.md     per case (R18-32px, R50-224): every ablation as a ratio to the full step,
#                           the reference step (flax + optax alone), the PyTorch peer, the gap attributed,
#                           and the profile's top ops per step of the full and the reference step
#   step_attribution.json   the same results, re-rendered by `ablations.py --render`
#   throughput.md           benchmarks/throughput.py's table of the two full steps (with their profiles)
#   torch_peer.json         the PyTorch rows (eager, torch.compile; channels_last, bf16)
#   log.txt                 everything printed
# Each stage has its own time limit and writes as it goes, so a stage that runs out of time leaves
# what it measured: the JAX ablations (limit 330 s; no new row after 300 s), then the PyTorch peer
# (120 s; no new row after 70 s: the eager rows, then torch.compile, R18 before R50), then the page.
# A rerun of one case (CASES=simclr_r50_224) writes that case's files alone: merge them by hand.
#
# Prepared here, once (the GPU image lacks ml_collections; nothing else ssl_jax imports is missing):
#   echo /.whl/ >> .git/info/exclude   # already in .gitignore
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl ml-collections==1.1.0
# Then, through the device tool (one call; the same again is the rerun):
#   run(command="bash benchmarks/gpu_step_attribution.sh", carry=[".whl"], timeout_s=540)
# and copy the returned step_attribution.{md,json}, throughput.md and torch_peer.json into
# benchmarks/results/ (device.txt's versions are in the pages' Environment lines too).
#
# On a CPU (checks the whole command without a GPU: tiny networks, one timed step per row):
#   OUT=/tmp/out TINY=1 bash benchmarks/gpu_step_attribution.sh
set -uo pipefail  # not -e: a stage that fails or times out must not cost the others' files
out=${OUT:-benchmarks/results}
mkdir -p "$out"
if ! python3 -c "import ml_collections" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/ml_collections-*.whl || exit 1
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1
# COMPILE_WORKERS=1 compiles the JAX programs one at a time (slower: R50's later rows may then fall
# to the time budget), should the concurrent compilation misbehave on the device.
jax_args=(--compile-workers "${COMPILE_WORKERS:-8}")
peer_args=()
if [ "${TINY:-0}" = 1 ]; then
  jax_args=(--batch 4 --steps 1 --warmup 1 --compile-workers 2 --set augment.image_size=8
            --set "model.encoder_kwargs={'stem': 'cifar', 'stage_sizes': (1,)}"
            --set model.projector.hidden_dim=16 --set model.projector.output_dim=8
            --set model.dtype=float32)
  peer_args=(--variants eager --steps 1 --warmup 1 --batch-scale 0.01)
fi
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 \
      || echo "no nvidia-smi"
  python3 -c "import sys, jax, jaxlib, flax, optax; print('python', sys.version.split()[0], 'jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'flax', flax.__version__, 'optax', optax.__version__, jax.devices())"
  python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())" 2>&1 | tail -1
} | tee "$out/device.txt"
cases=${CASES:-simclr_r18_cifar,simclr_r50_224}  # CASES=simclr_r50_224: a rerun of one case
timeout 330 python3 benchmarks/ablations.py --cases "$cases" --budget-s 300 --profile /tmp/profiles \
    --output "$out/step_attribution.md" --throughput-output "$out/throughput.md" \
    "${jax_args[@]}" >"$out/log.txt" 2>&1 \
    || echo "ablations.py stopped: exit $?" | tee -a "$out/log.txt"
timeout 120 python3 benchmarks/peers/torch_simclr_step.py --cases "$cases" --budget-s 70 \
    --output "$out/torch_peer.json" ${peer_args[@]+"${peer_args[@]}"} >>"$out/log.txt" 2>&1 \
    || echo "torch_simclr_step.py stopped: exit $?" | tee -a "$out/log.txt"
if [ -f "$out/step_attribution.json" ]; then
  python3 benchmarks/ablations.py --render "$out/step_attribution.json" \
      --peer-results "$out/torch_peer.json" --output "$out/step_attribution.md" 2>&1 \
      | tee -a "$out/log.txt"
else
  tail -40 "$out/log.txt"
fi
