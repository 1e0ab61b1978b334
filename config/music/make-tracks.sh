#!/usr/bin/env bash
# Synthesises vidbuilder's shipped background-music tracks with ffmpeg's lavfi sources.
#
# Nothing is downloaded and no samples are used: every sound is an `aevalsrc` expression
# (additive pads, plucked arpeggios, sine bass, pitch-swept kicks, filtered-noise hats), mixed
# and mastered with stock ffmpeg filters. Each track is a whole number of chord cycles, so it
# loops cleanly (`-stream_loop -1`). Re-run after editing:  ./make-tracks.sh  [track-id ...]
#
# Output: <id>.m4a (AAC-LC 96 kb/s stereo, 48 kHz). Durations must match catalog.toml.
set -euo pipefail
cd "$(dirname "$0")"
FFMPEG=${FFMPEG:-ffmpeg}
SR=48000

# sel IDX v0 v1 ... vN  ->  if(eq(IDX,0),v0,if(eq(IDX,1),v1,...vN))
sel() {
  local idx=$1
  shift
  local vals=("$@")
  local n=${#vals[@]}
  local out=${vals[$((n - 1))]}
  local k
  for ((k = n - 2; k >= 0; k--)); do
    out="if(eq($idx,$k),${vals[$k]},$out)"
  done
  printf '%s' "$out"
}

# A pad: three chord tones per chord (registers 3,4,5), soft additive timbre with a detuned
# copy, swelling in and out with each chord so the loop point (a chord boundary) is silent-ish.
#   pad LOOP CHORD_SECS "r1 r2 r3 r4" "t1 t2 t3 t4" "f1 f2 f3 f4"   (one list per chord tone)
pad() {
  local loop=$1 ch=$2 a b c
  read -ra a <<<"$3"
  read -ra b <<<"$4"
  read -ra c <<<"$5"
  local v='(sin(2*PI*F*t)+0.5*sin(2*PI*F*1.0035*t)+0.22*sin(4*PI*F*t)+0.07*sin(6*PI*F*t))'
  printf 'st(0,floor(mod(t,%s)/%s));st(1,mod(t,%s));' "$loop" "$ch" "$ch"
  printf 'st(2,min(1,ld(1)/0.8)*min(1,(%s-ld(1))/0.6));' "$ch"
  printf 'st(3,%s);st(4,%s);st(5,%s);' "$(sel 'ld(0)' "${a[@]}")" "$(sel 'ld(0)' "${b[@]}")" "$(sel 'ld(0)' "${c[@]}")"
  printf '0.11*ld(2)*(%s+%s+%s)' "${v//F/ld(3)}" "${v//F/ld(4)}" "${v//F/ld(5)}"
}

# A plucked arpeggio over the chord tones (one octave up), STEP seconds per note.
#   arp LOOP CHORD_SECS STEP DECAY PAN(-1..1 swing) "r..." "t..." "f..."
arp() {
  local loop=$1 ch=$2 step=$3 decay=$4 a b c
  read -ra a <<<"$6"
  read -ra b <<<"$7"
  read -ra c <<<"$8"
  printf 'st(0,floor(mod(t,%s)/%s));' "$loop" "$ch"
  printf 'st(3,%s);st(4,%s);st(5,%s);' "$(sel 'ld(0)' "${a[@]}")" "$(sel 'ld(0)' "${b[@]}")" "$(sel 'ld(0)' "${c[@]}")"
  printf 'st(6,floor(t/%s));st(7,mod(t,%s));' "$step" "$step"
  printf 'st(8,%s);' "$(sel 'mod(ld(6),8)' '2*ld(3)' '2*ld(4)' '2*ld(5)' '4*ld(3)' '2*ld(5)' '2*ld(4)' '4*ld(3)' '4*ld(4)')"
  printf '0.22*min(1,ld(7)/0.004)*exp(-%s*ld(7))*(sin(2*PI*ld(8)*t)+0.35*exp(-18*ld(7))*sin(4*PI*ld(8)*t)+0.1*sin(6*PI*ld(8)*t))' "$decay"
}

# Sine bass on the chord roots, re-struck every BEAT.
#   bass LOOP CHORD_SECS BEAT "b1 b2 b3 b4"
bass() {
  local loop=$1 ch=$2 beat=$3 r
  read -ra r <<<"$4"
  printf 'st(0,floor(mod(t,%s)/%s));st(1,%s);st(2,mod(t,%s));' "$loop" "$ch" "$(sel 'ld(0)' "${r[@]}")" "$beat"
  printf '0.32*min(1,ld(2)/0.01)*(0.35+0.65*exp(-3*ld(2)))*(sin(2*PI*ld(1)*t)+0.25*sin(4*PI*ld(1)*t))'
}

# A soft kick on every BEAT (pitch sweep 130 -> 48 Hz).
kick() {
  local beat=$1
  printf 'st(0,mod(t,%s));0.55*exp(-9*ld(0))*sin(2*PI*(48*ld(0)+(130-48)*(1-exp(-28*ld(0)))/28))' "$beat"
}

# Noise hats on the off-beats (high-passed in the graph).
hat() {
  local beat=$1
  printf 'st(0,mod(t+%s/2,%s));0.18*exp(-45*ld(0))*(2*random(1)-1)' "$beat" "$beat"
}

# render ID SECONDS FILTER_INPUTS MIX_GRAPH
render() {
  local id=$1 secs=$2 inputs=$3 graph=$4
  echo "==> $id.m4a (${secs}s)"
  # shellcheck disable=SC2086
  "$FFMPEG" -hide_banner -loglevel error -y $inputs -filter_complex "$graph" -map '[out]' \
    -t "$secs" -c:a aac -b:a 96k -ar $SR -ac 2 -movflags +faststart "$id.m4a"
}

src() { # src EXPR SECONDS -> -f lavfi -i aevalsrc=...
  printf -- "-f lavfi -i aevalsrc=exprs=%s:s=$SR:d=%s " "'$1'" "$2"
}

want() { [ ${#WANT[@]} -eq 0 ] && return 0; local w; for w in "${WANT[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }
WANT=("$@")

# ---------------------------------------------------------------------------------------------
# corp-1 "Forward Motion": uplifting corporate, 120 bpm, C - G - Am - F, two bars per chord.
if want corp-1; then
  L=16 CH=4 S=32
  R="261.63 246.94 261.63 261.63" T="329.63 293.66 329.63 349.23" F="392.00 392.00 440.00 440.00"
  IN="$(src "$(pad $L $CH "$R" "$T" "$F")" $S)"
  IN+="$(src "$(arp $L $CH 0.25 7 0 "$R" "$T" "$F")" $S)"
  IN+="$(src "$(bass $L $CH 0.5 '65.41 98.00 110.00 87.31')" $S)"
  IN+="$(src "$(kick 0.5)" $S)"
  IN+="$(src "$(hat 0.5)" $S)"
  G="[0]lowpass=f=3200,aecho=0.8:0.6:60|85:0.25|0.2[p];"
  G+="[1]aecho=0.8:0.55:375|250:0.32|0.22,highpass=f=180[a];"
  G+="[2]lowpass=f=420[b];[3]lowpass=f=1800[k];[4]highpass=f=7000,volume=0.8[h];"
  G+="[p][a][b][k][h]amix=inputs=5:weights=1 0.9 1 0.75 0.5:normalize=0,"
  G+="acompressor=threshold=0.25:ratio=3:attack=10:release=200,volume=1.1,alimiter=limit=0.89,aformat=channel_layouts=stereo[out]"
  render corp-1 $S "$IN" "$G"
fi

# ambient-1 "Quiet Horizon": calm, spacious pads, Am - F - C - G, no drums.
if want ambient-1; then
  L=32 CH=8 S=32
  R="220.00 174.61 261.63 196.00" T="261.63 220.00 329.63 246.94" F="329.63 261.63 392.00 293.66"
  IN="$(src "$(pad $L $CH "$R" "$T" "$F")" $S)"
  IN+="$(src "$(arp $L $CH 0.5 3 0 "$R" "$T" "$F")" $S)"
  IN+="$(src "$(bass $L $CH 2 '55.00 87.31 65.41 98.00')" $S)"
  G="[0]lowpass=f=2200,aecho=0.8:0.7:90|130:0.35|0.3[p];"
  G+="[1]aecho=0.8:0.6:750|500:0.4|0.3,lowpass=f=5000[a];"
  G+="[2]lowpass=f=300[b];"
  G+="[p][a][b]amix=inputs=3:weights=1.2 0.8 0.8:normalize=0,"
  G+="acompressor=threshold=0.3:ratio=2:attack=20:release=400,volume=1.25,alimiter=limit=0.89,aformat=channel_layouts=stereo[out]"
  render ambient-1 $S "$IN" "$G"
fi

# upbeat-1 "Bright Pulse": energetic, 128 bpm, G - D - Em - C, 16th-note arpeggio.
if want upbeat-1; then
  B=0.46875 # one beat at 128 bpm
  CH=3.75 L=15 S=30
  R="196.00 220.00 246.94 261.63" T="246.94 293.66 329.63 329.63" F="293.66 369.99 392.00 392.00"
  IN="$(src "$(pad $L $CH "$R" "$T" "$F")" $S)"
  IN+="$(src "$(arp $L $CH 0.1171875 11 0 "$R" "$T" "$F")" $S)"
  IN+="$(src "$(bass $L $CH 0.234375 '49.00 73.42 82.41 65.41')" $S)"
  IN+="$(src "$(kick $B)" $S)"
  IN+="$(src "$(hat $B)" $S)"
  G="[0]lowpass=f=3800,aecho=0.8:0.5:50|70:0.2|0.15[p];"
  G+="[1]aecho=0.8:0.5:351|234:0.3|0.2,highpass=f=220[a];"
  G+="[2]lowpass=f=500[b];[3]lowpass=f=2000[k];[4]highpass=f=6500[h];"
  G+="[p][a][b][k][h]amix=inputs=5:weights=0.8 1 1 0.95 0.7:normalize=0,"
  G+="acompressor=threshold=0.25:ratio=3:attack=8:release=150,volume=1.1,alimiter=limit=0.89,aformat=channel_layouts=stereo[out]"
  render upbeat-1 $S "$IN" "$G"
fi
