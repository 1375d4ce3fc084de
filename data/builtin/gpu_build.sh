#!/usr/bin/env bash
# The built-in model on one GPU machine in one command of about 9 minutes (the device tool allows 10):
#
#   corpus   data/corpus/make_corpus.py replays data/corpus/records.jsonl.gz (espeak-ng only, all cores)
#   codec A  codec_gpu.yaml: the whole codec from random weights, no GAN         (CODEC_MINUTES, 3)
#   tokens   sparktts prepare with phase A's export (training clips, and the held-out ones)
#   codec B  codec_gpu_decoder.yaml: the decoder side with the GAN, tokens fixed  } side by side
#   LLM      lm_gpu.yaml on phase A's tokens, validated on the held-out ones     } (TRAIN_MINUTES, 3)
#   release  sparktts export LM --codec B (the export checks that B tokenizes as A), packed into $OUT
#
# Every step is a plain sparktts command; data/builtin/build.py is the CPU recipe of the same stages.
# Here first (PyPI reachable): bash data/builtin/gpu_prep.sh   (wheels and espeak-ng into .device/)
# Then with the device tool:   run(command="bash data/builtin/gpu_build.sh", carry=[".device"], timeout_s=600)
# And here, on what came back (FILES_AT), into a working folder W:
#   python data/builtin/transfer.py unpack FILES_AT data/builtin/release --work W
#   python data/builtin/build.py --work W --out data/builtin/release --stages corpus eval --n N --jobs 1
# (N: W/corpus_summary.json's config.n) scores the release and writes its MODEL_CARD.md.
#
# $OUT gets release.tar.NNN (the release in bfloat16 pieces, transfer.py) and work.tar.gz (each run's
# config, metrics and run.json, build.json, the corpus summary, logs), and codec-a/ as soon as phase A
# is exported (kept only when the release could not be made).
# Environment: WORK (default /tmp/sparktts-gpu), OUT (default WORK/out), N training clips (default: the
# clips the records hold), HELDOUT (200), PYTHON (python3), CODEC_MINUTES, TRAIN_MINUTES, PREPARE_BATCH
# (32); CODEC_CONFIG, DECODER_CONFIG, LM_CONFIG (default: the *_gpu.yaml files here).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/data/builtin
py=$(realpath -s "$(command -v "${PYTHON:-python3}")")  # absolute (links kept: a venv), phase B runs in WORK
WORK=${WORK:-/tmp/sparktts-gpu}
OUT=${OUT:-$WORK/out}
HELDOUT=${HELDOUT:-200}
CODEC_MINUTES=${CODEC_MINUTES:-3}
TRAIN_MINUTES=${TRAIN_MINUTES:-3}
CODEC_CONFIG=${CODEC_CONFIG:-$here/codec_gpu.yaml}
DECODER_CONFIG=${DECODER_CONFIG:-$here/codec_gpu_decoder.yaml}
LM_CONFIG=${LM_CONFIG:-$here/lm_gpu.yaml}
mkdir -p "$WORK" "$OUT"
stamp() { echo "[$(date +%T)] $*"; }

export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# What gpu_prep.sh gathered, where this machine lacks it (the GPU image has torch & co., not these).
if ! "$py" -c "import librosa, soundfile, soxr" 2>/dev/null; then
    "$py" -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .device/whl/*.whl
    export PYTHONPATH="$WORK/site:$PYTHONPATH"
fi
command -v espeak-ng >/dev/null || export PATH="$root/.device/espeak/bin:$PATH"
sp() { "$py" -m sparktts.cli "$@"; }
"$py" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

N=${N:-$("$py" -c "
import sys; sys.path.insert(0, 'data/corpus'); import make_corpus as mc
known = mc.read_known_records(); n = 0
while f'tr_{n:06d}' in known: n += 1
print(n)")}  # the recorded prefix: every clip replays (or is a recorded failure), none is measured
stamp "corpus: $N training clips, $HELDOUT held out"
"$py" data/corpus/make_corpus.py --out "$WORK/corpus" --n "$N" --heldout "$HELDOUT" --seed 0 \
    --jobs "$(nproc)" > "$WORK/corpus.log" 2>&1 || { tail -20 "$WORK/corpus.log"; exit 1; }

stamp "codec phase A"
sp train codec --config "$CODEC_CONFIG" --data "$WORK/corpus/manifest.jsonl" --out "$WORK/codec-a-run" \
    --max-minutes "$CODEC_MINUTES" --val-data "$WORK/corpus/heldout.jsonl"
rm -rf "$WORK/codec-a" && sp export "$WORK/codec-a-run" --out "$WORK/codec-a"
"$py" "$here/transfer.py" pack "$WORK/codec-a" "$OUT/codec-a" --runs "$WORK/codec-a-run"

stamp "tokens"
sp prepare "$WORK/corpus/manifest.jsonl" --model_dir "$WORK/codec-a" --out "$WORK/tokens" \
    --batch_size "${PREPARE_BATCH:-32}"
sp prepare "$WORK/corpus/heldout.jsonl" --model_dir "$WORK/codec-a" --out "$WORK/heldout_tokens" \
    --batch_size "${PREPARE_BATCH:-32}"

stamp "codec phase B beside the LLM"
(cd "$WORK" && sp train codec --config "$DECODER_CONFIG" --init codec-a --data corpus/manifest.jsonl \
    --out codec-b-run --max-minutes "$TRAIN_MINUTES" --val-data corpus/heldout.jsonl > codec-b.log 2>&1) &
decoder=$!
sp train lm --config "$LM_CONFIG" --data "$WORK/tokens" --out "$WORK/lm-run" --max-minutes "$TRAIN_MINUTES" \
    --val-data "$WORK/heldout_tokens"
codec=()
if wait "$decoder"; then
    rm -rf "$WORK/codec-b" && sp export "$WORK/codec-b-run" --out "$WORK/codec-b" && codec=(--codec "$WORK/codec-b")
else
    stamp "codec phase B failed (the release ships phase A's decoder):"; tail -20 "$WORK/codec-b.log"
fi

stamp "release"
rm -rf "$WORK/release" && sp export "$WORK/lm-run" --out "$WORK/release" "${codec[@]}"
runs=("$WORK/codec-a-run" "$WORK/lm-run")
[ -d "$WORK/codec-b" ] && runs+=("$WORK/codec-b-run")
# build.json as build.py keeps it, so its eval stage and model card work on this build too; the corpus
# summary says which clips it trained on.
PYTHONPATH="$here:$PYTHONPATH" "$py" -c 'import sys, build; build.record_runs(sys.argv[1], sys.argv[2:])' \
    "$WORK" "${runs[@]}"
cp "$WORK/corpus/summary.json" "$WORK/corpus_summary.json"
"$py" "$here/transfer.py" pack "$WORK/release" "$OUT" --runs "${runs[@]}" \
    --extra "$WORK/build.json" "$WORK/corpus_summary.json" "$WORK/corpus.log" "$WORK/codec-b.log"
rm -rf "$OUT/codec-a"  # the release holds phase A's tokenizer side; the returned files have a size limit
stamp "done"; ls -la "$OUT"
