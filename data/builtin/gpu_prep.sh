#!/usr/bin/env bash
# Run on this (CPU) machine before the GPU recipe (data/builtin/gpu_build.sh): gathers into .device/
# (in .gitignore; carried to the GPU machine with the device tool's `carry: [".device"]`) what that
# machine's image lacks:
#   .device/whl/     wheels for its Python 3.12 (librosa, soundfile, soxr and what they need)
#   .device/espeak/  this machine's espeak-ng: the binary, the shared libraries it loads (not glibc's),
#                    and English-only voice data. The same build gives the same bytes, so the corpus
#                    replays data/corpus/records.jsonl.gz instead of measuring F0 again.
# Needs: espeak-ng installed here (apt-get install espeak-ng) and PyPI reachable.
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.device
rm -rf "$dest" && mkdir -p "$dest/whl" "$dest/espeak/bin" "$dest/espeak/libexec" "$dest/espeak/lib"

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$dest/whl" \
    librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0 audioread pooch decorator platformdirs

bin=$(command -v espeak-ng)
cp "$bin" "$dest/espeak/libexec/"
# The wrapper on PATH gives espeak-ng alone its libraries and data: with them on the whole process's
# LD_LIBRARY_PATH, torch would load this machine's libzstd, libsystemd, ... instead of its own.
cat > "$dest/espeak/bin/espeak-ng" <<'WRAP'
#!/bin/sh
here=$(dirname "$(dirname "$(readlink -f "$0")")")
LD_LIBRARY_PATH="$here/lib" ESPEAK_DATA_PATH="$here" exec "$here/libexec/espeak-ng" "$@"
WRAP
chmod +x "$dest/espeak/bin/espeak-ng"
# Every shared library espeak-ng loads except the C library itself (the GPU machine's glibc is newer).
ldd "$bin" | awk '/=> \//{print $3}' | grep -vE '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' \
    | xargs -I{} cp -L {} "$dest/espeak/lib/"
data=$(dirname "$(readlink -f "$(ldconfig -p | awk '/libespeak-ng.so.1 /{print $NF; exit}')")")/espeak-ng-data
mkdir -p "$dest/espeak/espeak-ng-data"
# English only: the phoneme tables, the English dictionary, the voices and their variants.
( cd "$data" && cp -r phondata phondata-manifest phonindex phontab intonations en_dict lang voices \
    "$OLDPWD/$dest/espeak/espeak-ng-data/" )
# The copy must run on its own: its libraries and its data (espeak-ng --version names the data folder).
env -i "$dest/espeak/bin/espeak-ng" --version | grep -q "$PWD/$dest/espeak/espeak-ng-data"
env -i "$dest/espeak/bin/espeak-ng" -v en-us+f3 -w "$dest/check.wav" "A check." && rm "$dest/check.wav"
du -sh "$dest"/*
