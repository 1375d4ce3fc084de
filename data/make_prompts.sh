#!/usr/bin/env bash
# Regenerate the espeak-ng prompt wavs of the shipped test lists (16 kHz mono 16-bit PCM, ~1.5 s each).
# Needs: apt-get install espeak-ng sox. Output is deterministic for a given espeak-ng version
# (1.51 was used for the committed files).
set -euo pipefail
# Written into the package (sparktts/assets/testlists), where sparktts reads them; data/testlists links there.
cd "$(dirname "$0")/../sparktts/assets/testlists/wavs"

gen() {  # gen NAME VOICE TEXT
    local name=$1 voice=$2 text=$3 raw
    raw=$(mktemp --suffix=.wav)
    espeak-ng -v "$voice" -s 170 -w "$raw" "$text"
    # 16 kHz mono 16-bit, no dither (-D: byte-identical reruns); trim leading/trailing silence below 1% so the files stay small.
    sox -D "$raw" -r 16000 -c 1 -b 16 "$name.wav" silence 1 0.02 1% reverse silence 1 0.02 1% reverse
    rm -f "$raw"
}

gen espeak_m1 en "The sky that morning was clear."
gen espeak_f3 en-us+f3 "Rice is often served in round bowls."
gen espeak_m3 en-gb+m3 "Help the woman get back to her feet."
