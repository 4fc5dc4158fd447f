#!/usr/bin/env bash
# The steps of a GPU check on a lent machine, one per device call (tools/experiments/gpu_check.py says
# what is measured; ../shared/docs/gpu.md why). The machine reaches no registry, so what it lacks travels
# carried: .whl (this project's wheel and pyzmq's, for Python 3.12), .gpu/demo (`gpu_check prepare`) and
# .gpu/p0 .. p4 (onnxruntime-gpu, its package folder as tar.xz cut in parts that fit one call each). A
# carried folder is replaced on every call, so `stash` moves each call's part out of the checkout first.
# Made here, once (both folders git-ignored through .git/info/exclude):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 -d /tmp/w onnxruntime-gpu==1.31.1 pyzmq==27.3.0
#   mkdir -p .whl .gpu/ort && mv /tmp/w/pyzmq* .whl/ && .venv/bin/pip wheel --no-deps -w .whl .
#   (cd .gpu/ort && unzip -q /tmp/w/onnxruntime_gpu-*.whl && rm onnxruntime/capi/*tensorrt*)
#   tar -C .gpu/ort -cf - . | xz -9e -T2 > .gpu/ort.tar.xz     # 203 MB
#   head -c 25M .gpu/ort.tar.xz > .gpu/p0; tail -c +26214401 .gpu/ort.tar.xz | split -n 4 -d -a 1 - .gpu/q
#   for i in 0 1 2 3; do mv .gpu/q$i .gpu/p$((i + 1)); done
#   .venv/bin/python -m tools.experiments.gpu_check prepare .gpu/demo
# Then: call 1 carries .whl .gpu/demo .gpu/p0 (`stash; setup; full-bg`), calls 2-4 one part each
# (`stash; progress`), call 5 .gpu/p4 (`stash; SERVE=1 final`); about 5 minutes of device time.
#
#   stash      keep what this call carried (.gpu/*) in /tmp/parts
#   setup      install .whl into /tmp/site; print the machine
#   full-bg    in the background: write a gpt-oss-20b-shaped checkpoint, export it (--dtype float16
#              --experts mxfp4, unverified: a timing run) and derive the int4 timing folder from it
#   depth-bg   the same, then a float32 export of it and its int4 timing folder too
#   depth      join the parts, then float16_depth_check: the float16 folder on CUDA against the float32
#              one on the CPU, with the same values
#   real-bg    an 8-layer slice exported --dtype float16 and float32 with real int4 codes (background)
#   real       float16_depth_check on it: float16 on CUDA against float32 on the CPU (the CPU's own
#              float16 kernel gave 2.31 here, docs/performance.md)
#   twin-bg    the full-size checkpoint exported as the README says for a GPU (--dtype float16: int4 experts
#              with real codes), and its float32 twin folder (background)
#   twin       the KV copy and batching checks on the demo folders (gpu_kv_check.py), then the float16
#              export on CUDA against its twin on the CPU, then gpu_check --full --serve on it
#   layers-bg  an 8-layer slice of the checkpoint (background)
#   layers     float16_layer_errors.py on it: each float16 layer on CUDA against its twin on the CPU (about
#              30 s a layer on 16 cores: the pieces are built there); the next GPU check to run
#   dense-bg   the full-size checkpoint exported --dtype float16 --dense int4 (background)
#   dense      the demo's quantized-dense folders on CUDA against the CPU (prepare --folders twin-f32
#              twin-f16 int4-f16 int4d-f16 int8d-f16), then the full-size export: memory under each arena
#              growth, speed, parley serve
#   window-bg  the --dense int4 export with window caches, and its full-length-cache twin (background)
#   window     the demo folders on CUDA against the CPU, then the full-size folder with and without
#              window caches: memory, speed; then parley serve at 1 and 8 clients
#   blocks-bg  the --dense int4 export with --block-size 64 (half the scales; the smallest GPU export), and
#              the same with blocks of 32 (background)
#   blocks     decode replayed as CUDA graphs on two demo folders (tools/experiments/cuda_graph_decode.py:
#              tokens equal to today's steps? tok/s), the demo folders (int4d64-f16 among them) on CUDA
#              against the CPU, then CUDA graphs on the block-64 full-size folder, both full-size folders:
#              memory, speed; then parley serve, prefill_shapes and batch_trace on the block-64 one. The
#              next GPU check to run
#              (prepare .gpu/demo with --folders twin-f32 twin-f16 int4-f16 int4d-f16 int8d-f16 int4d64-f16;
#              calls as for window: FULL_ONLY=1 WAIT_S=600 for the last)
#   progress   where the background work is
#   final      join the parts, load onnxruntime-gpu with the CUDA libraries torch brought, run the QMoE
#              layout check (QMOE=1) and gpu_check on the demo folders, then gpu_check on the int4 timing
#              folder (SERVE=1: through parley serve too)
set -u
SITE=/tmp/site
WORK=/tmp/parley-gpu
ORT=/tmp/ortgpu
PARTS=/tmp/parts
export PYTHONUNBUFFERED=1

background() {  # run "$1" (shell commands) after the machine's setup, detached, logging to full.log
  mkdir -p "$WORK"
  setsid nohup bash -c "export PYTHONPATH=$SITE; $1 && echo EXPORT-DONE" >"$WORK/full.log" 2>&1 </dev/null &
  sleep 2; tail -c 600 "$WORK/full.log"
}

gpu_onnxruntime() {  # join the carried parts and put onnxruntime-gpu and torch's CUDA libraries in reach
  [ -d "$ORT/onnxruntime" ] || { mkdir -p "$ORT" && cat "$PARTS"/p0 "$PARTS"/p1 "$PARTS"/p2 "$PARTS"/p3 "$PARTS"/p4 \
    | xz -d | tar -C "$ORT" -x; } || exit 1  # once per machine
  purelib=$(python3 -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
  LD_LIBRARY_PATH=$(find "$purelib/nvidia" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH PYTHONPATH="$ORT:$SITE"
  python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.__file__, o.get_available_providers())"
}

wait_for_background() {  # up to WAIT_S seconds, then its log's last lines
  for _ in $(seq "${WAIT_S:-200}"); do grep -q EXPORT-DONE "$WORK/full.log" && break; sleep 1; done
  tr '\r' '\n' <"$WORK/full.log" | grep -v '^\s*$' | grep -v "layer/s" | tail -12 | tee "$OUT/full-export.log"
}

DEMO_FOLDERS=${DEMO_FOLDERS:-twin-f32 twin-f16 int4-f16 int4d-f16 int8d-f16 int4d64-f16}
demo_folders() {  # the demo folders `prepare --folders $DEMO_FOLDERS` made, CUDA vs CPU
  python3 -m tools.experiments.gpu_check run --demo "$PARTS/demo" --folders $DEMO_FOLDERS \
    --out "$OUT/demo" 2>&1 | grep -v "plugin EP\|GEMM config" >"$OUT/demo.log"; tail -c 2500 "$OUT/demo.log" 2>/dev/null
}

cuda_graphs() {  # decode replayed as CUDA graphs against today's steps on each folder given (tokens, tok/s)
  for folder in "$@"; do
    timeout 300 python3 -m tools.experiments.cuda_graph_decode "$folder" --provider cuda --rows 1,8 \
      --out "$OUT/cuda-graph-$(basename "$folder").json" 2>&1 | grep -v "plugin EP\|GEMM config" \
      | tee -a "$OUT/cuda-graph.log" | tail -c 1200
  done
}

serve_concurrent() {  # 1 and 8 concurrent clients through parley serve on the model folder "$1"
  python3 -c "from tools.experiments.measure_model_folder import concurrent; import json; \
print(json.dumps(concurrent(__import__('pathlib').Path('$1'), [1, 8], 32), default=str))" 2>&1 \
    | grep -v "plugin EP\|GEMM config" | tee "$OUT/serve.log" | tail -c 1500
}

case "${1:-}" in
stash)
  mkdir -p "$PARTS" && cp -r .gpu/. "$PARTS/" && ls "$PARTS"
  ;;
setup)
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl || exit 1
  nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv
  python3 -c "import sys, onnxruntime, torch; print(sys.version, 'preinstalled onnxruntime', onnxruntime.__version__, 'torch', torch.__version__)"
  df -h /tmp | tail -1; nproc; free -g | head -2
  ;;
full-bg)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && python3 -m runtime.cli export $WORK/20b $WORK/20b-fp4 --dtype float16 --experts mxfp4 --no-verify && python3 -m tools.experiments.int4_timing_folder $WORK/20b-fp4 $WORK/20b-int4t"
  ;;
depth-bg)
  # float16 against float32 at full depth: two int4 timing folders with the same values
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && python3 -m runtime.cli export $WORK/20b $WORK/20b-fp4 --dtype float16 --experts mxfp4 --no-verify && python3 -m tools.experiments.int4_timing_folder $WORK/20b-fp4 $WORK/20b-int4t && \
    python3 -m runtime.cli export $WORK/20b $WORK/20b-fp4-32 --experts mxfp4 --no-verify && \
    python3 -m tools.experiments.int4_timing_folder $WORK/20b-fp4-32 $WORK/20b-int4t-32"
  ;;
depth)
  gpu_onnxruntime
  wait_for_background
  python3 -m tools.experiments.float16_depth_check "$WORK/20b-int4t" "$WORK/20b-int4t-32" --json "$OUT/depth.json" \
    2>&1 | grep -v "plugin EP\|GEMM config" | tee "$OUT/depth.log"
  ;;
real-bg)
  # float16 against float32 with real int4 codes (an 8-layer slice): the CPU's float16 kernel drifts here.
  # Since float16 scales are rounded before the codes are computed, the two folders' experts differ by that
  # rounding (it moved the float32 graph by 0.023 on the CPU); the float16 export could also verify itself
  # through its float32 twin (drop --no-verify; minutes on 16 cores)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/g8 --layers 8 && \
    python3 -m runtime.cli export $WORK/g8 $WORK/g8-f16 --dtype float16 --no-verify && \
    python3 -m runtime.cli export $WORK/g8 $WORK/g8-f32 --no-verify"
  ;;
real)
  gpu_onnxruntime
  wait_for_background
  python3 -m tools.experiments.float16_depth_check "$WORK/g8-f16" "$WORK/g8-f32" --verification-prompt \
    --json "$OUT/real.json" 2>&1 | grep -v "plugin EP\|GEMM config" | tee "$OUT/real.log"
  ;;
twin-bg)
  # a real full-size GPU export (the README's command, int4 codes from the checkpoint's MXFP4) and, at the
  # same time (each takes ~12 s a layer on 16 cores), its float32 twin (float32_twin_folder.py: the same
  # values, for the CPU)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && \
    (python3 -m tools.experiments.float32_twin_folder $WORK/20b $WORK/20b-f32 >$WORK/twin.log 2>&1 && echo TWIN-DONE >>$WORK/twin.log &) && \
    python3 -m runtime.cli export $WORK/20b $WORK/20b-f16 --dtype float16 --no-verify"
  ;;
twin)
  # the demo folders' KV copies and batching on CUDA while the exports finish; then the float16 export on
  # CUDA against its float32 twin on the CPU (greedy tokens, logits), then served (memory, speed, parley serve)
  gpu_onnxruntime
  python3 -m tools.experiments.gpu_check run --kv "$PARTS/demo" --out "$OUT/kv" 2>&1 \
    | grep -v "plugin EP\|GEMM config" >"$OUT/kv.log"; tail -c 1500 "$OUT/kv.log"
  wait_for_background
  for _ in $(seq "${WAIT_S:-200}"); do grep -q TWIN-DONE "$WORK/twin.log" && break; sleep 1; done
  tr '\r' '\n' <"$WORK/twin.log" | grep -v "layer/s" | tail -3
  python3 -m tools.experiments.float16_depth_check "$WORK/20b-f16" "$WORK/20b-f32" --verification-prompt \
    --steps 16 --json "$OUT/twin.json" 2>&1 | grep -v "plugin EP\|GEMM config" | tee "$OUT/twin.log" | tail -c 1500
  python3 -m tools.experiments.gpu_check run --full "$WORK/20b-f16" --gpu-mem-mb "${CAP_MB:-15000}" --serve \
    --out "$OUT/full" 2>&1 | grep -v "plugin EP\|GEMM config" >"$OUT/full.log"; tail -c 3000 "$OUT/full.log"
  ;;
layers-bg)
  # an 8-layer slice of the 20b-shaped checkpoint for float16_layer_errors.py (its pieces are built from it)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/g8 --layers 8"
  ;;
layers)
  # each float16 layer on CUDA against its float32 twin on the CPU, fed the same input, with the routing
  # shown (docs/performance.md, "On an NVIDIA H100": on the CPU the float16 layers were within rounding
  # wherever they routed as the twin did)
  gpu_onnxruntime
  wait_for_background
  python3 -m tools.experiments.float16_layer_errors "$WORK/g8" --provider cuda --json "$OUT/layers.json" 2>&1 \
    | grep -v "plugin EP\|GEMM config" | tee "$OUT/layers.log" | tail -c 3000
  ;;
dense-bg)
  # the GPU export with the least memory (--dtype float16 --dense int4: the attention, unembedding and
  # embedding table block-quantized to 4 bits; int4 experts from the checkpoint's MXFP4), unverified
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && \
    python3 -m runtime.cli export $WORK/20b $WORK/20b-d4 --dtype float16 --dense int4 --no-verify"
  ;;
dense)
  # the demo's --dense int4/int8 folders (the embedding table quantized: GatherBlockQuantized) on CUDA
  # against the CPU, then the full-size --dense int4 export: memory, speed, each arena growth in a fresh
  # process, then through parley serve
  gpu_onnxruntime
  [ -n "${FULL_ONLY:-}" ] || demo_folders
  [ -n "${DEMO_ONLY:-}" ] && exit 0  # the rest in a later call, when the export is done
  wait_for_background
  for variant in "kNextPowerOfTwo own" "kNextPowerOfTwo default" "kSameAsRequested own"; do
    set -- $variant; name="$1-kv-$2"
    python3 -m tools.experiments.gpu_check run --full "$WORK/20b-d4" --arena "$1" --kv-arena "$2" --out "$OUT/$name" \
      2>&1 | grep -v "plugin EP\|GEMM config" >"$OUT/$name.log"; tail -c 1500 "$OUT/$name.log"
  done
  serve_concurrent "$WORK/20b-d4"
  ;;
blocks-bg)
  # the two exports side by side (16 cores; one alone took 434 s in the seventh session)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && \
    { python3 -m runtime.cli export $WORK/20b $WORK/20b-d4b64 --dtype float16 --dense int4 --block-size 64 --no-verify & p=\$!; \
      python3 -m runtime.cli export $WORK/20b $WORK/20b-d4 --dtype float16 --dense int4 --no-verify >$WORK/d4.log 2>&1; \
      wait \$p; } && ls $WORK/20b-d4/manifest.json $WORK/20b-d4b64/manifest.json"
  ;;
blocks)
  # issue 13's 14 GB at 8 x 4096 with half the scales: each folder in a fresh process, then parley serve
  gpu_onnxruntime
  [ -n "${FULL_ONLY:-}" ] || { cuda_graphs "$PARTS/demo/int4d64-f16" "$PARTS/demo/twin-f16"; demo_folders; }
  [ -n "${DEMO_ONLY:-}" ] && exit 0  # the rest in a later call, when the exports are done
  wait_for_background
  cuda_graphs "$WORK/20b-d4b64"
  for name in 20b-d4b64 20b-d4; do
    python3 -m tools.experiments.gpu_check run --full "$WORK/$name" --out "$OUT/$name" 2>&1 \
      | grep -v "plugin EP\|GEMM config" >"$OUT/$name.log"; tail -c 1200 "$OUT/$name.log"
  done
  serve_concurrent "$WORK/20b-d4b64"
  # where 8 replies' time goes on a GPU, and what batching their prompts would buy (docs/performance.md,
  # "Where the 8-concurrent time goes": measured on the CPU only)
  python3 -m tools.experiments.prefill_shapes "$WORK/20b-d4b64" --rounds 5 2>&1 \
    | grep -v "plugin EP\|GEMM config" | tee "$OUT/prefill_shapes.log" | tail -9
  python3 -m tools.experiments.batch_trace "$WORK/20b-d4b64" --passes 3 2>&1 \
    | grep -v "plugin EP\|GEMM config" | tee "$OUT/batch_trace.log" | tail -6
  ;;
window-bg)
  # the --dense int4 export again, now with window caches (the default), and its full-length-cache twin made
  # from it (tools/experiments/full_cache_folder.py: the same weights, seconds rather than another export)
  background "python3 -m tools.experiments.gpt_oss_20b_checkpoint $WORK/20b && \
    python3 -m runtime.cli export $WORK/20b $WORK/20b-d4 --dtype float16 --dense int4 --no-verify && \
    python3 -m tools.experiments.full_cache_folder $WORK/20b-d4 $WORK/20b-d4-full"
  ;;
window)
  # the demo folders (window caches: the demo's window is 128, its prompts longer) on CUDA against the CPU;
  # then the full-size folder with and without window caches, each in a fresh process; then parley serve
  gpu_onnxruntime
  [ -n "${FULL_ONLY:-}" ] || demo_folders
  [ -n "${DEMO_ONLY:-}" ] && exit 0  # the rest in a later call, when the export is done
  wait_for_background
  for name in 20b-d4 20b-d4-full; do
    python3 -m tools.experiments.gpu_check run --full "$WORK/$name" --out "$OUT/$name" 2>&1 \
      | grep -v "plugin EP\|GEMM config" >"$OUT/$name.log"; tail -c 1200 "$OUT/$name.log"
  done
  serve_concurrent "$WORK/20b-d4"
  ;;
progress)
  tail -c 800 "$WORK/full.log" | tr '\r' '\n' | tail -4; du -sh "$WORK"/* 2>/dev/null
  ;;
final)
  gpu_onnxruntime
  if [ -n "${QMOE:-}" ]; then
    python3 -m tools.experiments.qmoe_cuda_check --json "$OUT/qmoe.json" 2>&1 | grep -v "plugin EP\|GEMM config" | tee "$OUT/qmoe.log"
  fi
  python3 -m tools.experiments.gpu_check run --demo "$PARTS/demo" --out "$OUT/demo" 2>&1 \
    | grep -v "plugin EP\|GEMM config" >"$OUT/demo.log"; tail -c 2500 "$OUT/demo.log"
  wait_for_background
  if grep -q EXPORT-DONE "$WORK/full.log"; then
    python3 -m tools.experiments.gpu_check run --full "$WORK/20b-int4t" --gpu-mem-mb "${CAP_MB:-15000}" --memory-options \
      ${SERVE:+--serve} --out "$OUT/full" 2>&1 | grep -v "plugin EP\|GEMM config" | tee "$OUT/full.log"
  fi
  ;;
*)
  echo "usage: gpu_machine.sh stash|setup|window-bg|window|dense-bg|dense|full-bg|depth-bg|depth|real-bg|real|twin-bg|twin|layers-bg|layers|progress|final" >&2; exit 2
  ;;
esac
