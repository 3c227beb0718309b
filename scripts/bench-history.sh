#!/usr/bin/env bash
# A store with history, as pass makes it: N entries (default 100), one commit each, then C
# commits (default 3000) that each rewrite one entry with another ciphertext for the same
# recipients, then vault init and one former member; and the same store without the C commits
# (C = 0). For each vault binary given, the median of REPS runs (default 3), each on a fresh copy:
# `vault audit` and `vault add-member` on the long history, `vault add-member` on the short one
# (and the ratio long / short); and git's own walk of the long history (`git log --raw
# --no-renames`). The history is written by one `git fast-import` stream, so C = 20000 takes
# seconds. Private GnuPG home and temporary folders (removed at the end unless KEEP=1).
#
#   N=100 C=3000 scripts/bench-history.sh [--reps K] target/release/vault [OTHER_VAULT…]
#   (REPS=K works too; V1=BIN makes the stores with BIN instead of the first binary)
set -euo pipefail

N=${N:-100}
C=${C:-3000}
REPS=${REPS:-3}
while [ $# -gt 0 ]; do
  case "$1" in
  --reps)
    REPS="$2"
    shift 2
    ;;
  --reps=*)
    REPS="${1#--reps=}"
    shift
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  --)
    shift
    break
    ;;
  -*)
    echo "bench-history: unknown option $1 (see --help)" >&2
    exit 2
    ;;
  *) break ;;
  esac
done
if [ $# -eq 0 ]; then
  echo "usage: N=100 C=3000 $0 [--reps K] VAULT_BINARY [OTHER_VAULT…]" >&2
  exit 2
fi
bins=()
for b in "$@"; do
  [ -x "$b" ] || { echo "bench-history: $b is not an executable" >&2; exit 2; }
  bins+=("$(cd "$(dirname "$b")" && pwd)/$(basename "$b")")
done
V="${V1:-${bins[0]}}"

W=$(mktemp -d "${TMPDIR:-/tmp}/histbench.XXXX")
echo "work: $W (N=$N C=$C, median of $REPS runs)"
export GNUPGHOME="$W/g" HOME="$W/home"
mkdir -m 700 "$GNUPGHOME"
mkdir -p "$HOME"
echo "trust-model always" >"$GNUPGHOME/gpg.conf"
cleanup() {
  gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT
export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@x
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
# No automatic (background) git gc during the measurements.
export GIT_CONFIG_COUNT=3 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main \
  GIT_CONFIG_KEY_1=gc.auto GIT_CONFIG_VALUE_1=0 GIT_CONFIG_KEY_2=maintenance.auto GIT_CONFIG_VALUE_2=false
unset PASSWORD_STORE_DIR PASSWORD_STORE_KEY PASSWORD_STORE_GPG_OPTS VAULT_IDENTITY

# Keys: alice operates, bob becomes a former member, carol is added.
LB=(--batch --pinentry-mode loopback --passphrase=)
declare -A FPR
for n in alice bob carol; do
  gpg "${LB[@]}" --quick-gen-key "$n <$n@x>" ed25519 sign never 2>/dev/null
  FPR[$n]=$(gpg --with-colons -k "$n@x" | awk -F: '/^fpr/ { print $10; exit }')
  gpg "${LB[@]}" --quick-add-key "${FPR[$n]}" cv25519 encr never 2>/dev/null
done
gpg --armor --export-secret-keys "${FPR[alice]}" >"$W/alice.sec"
gpg --armor --export "${FPR[carol]}" >"$W/carol.asc"

# The ciphertexts: one per entry, and 40 more the edits cycle through (for alice and bob).
mkdir -p "$W/plain"
for i in $(seq 1 "$N"); do echo "pw$i" >"$W/plain/e$i"; done
for k in $(seq 1 40); do echo "v$k" >"$W/plain/v$k"; done
(cd "$W/plain" && printf '%s\n' * | gpg --batch -r "${FPR[alice]}" -r "${FPR[bob]}" --compress-algo none \
  --set-filename "" --encrypt-files)

# fi_commit MESSAGE BLOB PATH: one commit of a fast-import stream on refs/heads/main, at time
# FI_WHEN, after FI_FROM if set (the first commit; then FI_FROM is emptied).
fi_commit() {
  printf 'commit refs/heads/main\nauthor T <t@x> %s +0000\ncommitter T <t@x> %s +0000\ndata %d\n%s\n' \
    "$FI_WHEN" "$FI_WHEN" $((${#1} + 1)) "$1"
  if [ -n "$FI_FROM" ]; then
    printf 'from %s\n' "$FI_FROM"
    FI_FROM=""
  fi
  printf 'M 100644 %s %s\n\n' "$2" "$3"
}
# make_store NAME EDITS: pass init + pass git init, then (one fast-import stream) one commit per
# entry as `pass insert` makes it and EDITS commits as `pass edit` makes them, each rewriting entry
# (c mod N) + 1 with edit ciphertext c mod 40; the work tree checked out; vault init, bob removed
# (a former member), git gc. Leaves W/NAME.tar.
make_store() {
  local name="$1" edits="$2" S="$W/$1" c i
  local -a eb vb
  mkdir -p "$S"
  PASSWORD_STORE_DIR="$S" pass init "${FPR[alice]}" "${FPR[bob]}" >/dev/null
  PASSWORD_STORE_DIR="$S" pass git init >/dev/null
  mapfile -t eb < <(for i in $(seq 1 "$N"); do echo "$W/plain/e$i.gpg"; done |
    git -C "$S" hash-object -w --stdin-paths)
  mapfile -t vb < <(for i in $(seq 1 40); do echo "$W/plain/v$i.gpg"; done |
    git -C "$S" hash-object -w --stdin-paths)
  FI_FROM=$(git -C "$S" rev-parse HEAD)
  FI_WHEN=$(git -C "$S" log -1 --format=%ct)
  {
    for ((i = 1; i <= N; i++)); do
      fi_commit "Add given password for e/e$i to store." "${eb[i - 1]}" "e/e$i.gpg"
    done
    for ((c = 1; c <= edits; c++)); do
      i=$((c % N + 1))
      fi_commit "Edit password for e/e$i using vim." "${vb[c % 40]}" "e/e$i.gpg"
    done
    echo "done" # the end of the stream (--done)
  } | git -C "$S" fast-import --quiet --done
  (umask 077 && git -C "$S" reset -q --hard)
  if ! { "$V" --store "$S" --identity "$W/alice.sec" --yes init &&
    "$V" --store "$S" --identity "$W/alice.sec" --yes remove-member bob; } >"$W/$name.log" 2>&1; then
    cat "$W/$name.log" >&2
    exit 1
  fi
  git -C "$S" gc -q
  echo "$name: $(git -C "$S" rev-list --count HEAD) commits, $(git -C "$S" ls-files '*.gpg' | wc -l) entries"
  tar -C "$W" -cf "$W/$name.tar" "$name"
  rm -rf "$S"
}
t0=$EPOCHREALTIME
make_store long "$C"
t1=$EPOCHREALTIME
make_store short 0
echo "stores made in $(awk -v a="${t0/./}" -v b="${t1/./}" 'BEGIN { printf "%.1f", (b - a) / 1e6 }') s (long), with vault init and remove-member"

fresh() { # NAME: a fresh copy of the store at W/NAME
  rm -rf "${W:?}/$1"
  tar -C "$W" -xf "$W/$1.tar"
}
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# timed CMD...: runs CMD (output discarded), sets T (seconds). Exit 0, or 3 ("needs attention",
# from audit), is accepted.
timed() {
  local a b rc=0
  a=${EPOCHREALTIME/./}
  "$@" >/dev/null 2>"$W/stderr" || rc=$?
  b=${EPOCHREALTIME/./}
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    echo "bench-history: $* failed (exit $rc):" >&2
    cat "$W/stderr" >&2
    exit 1
  fi
  T=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", (b - a) / 1e6 }')
}

for bin in "${bins[@]}"; do
  audit="" long="" short=""
  for _ in $(seq 1 "$REPS"); do
    fresh long
    timed "$bin" --store "$W/long" audit
    audit="$audit $T"
    timed "$bin" --store "$W/long" --identity "$W/alice.sec" --yes add-member "$W/carol.asc"
    long="$long $T"
    fresh short
    timed "$bin" --store "$W/short" --identity "$W/alice.sec" --yes add-member "$W/carol.asc"
    short="$short $T"
  done
  a=$(echo "$audit" | median) l=$(echo "$long" | median) s=$(echo "$short" | median)
  echo "$bin:"
  printf '  %-28s %8.3f s   [%s ]\n' "audit (C=$C)" "$a" "$audit" "add-member (C=$C)" "$l" "$long" \
    "add-member (C=0)" "$s" "$short"
  printf '  %-28s %8s\n' "add-member long / short" "$(awk -v l="$l" -v s="$s" 'BEGIN { printf "%.2fx", (s > 0) ? l / s : 0 }')"
done
fresh long
g=""
for _ in $(seq 1 "$REPS"); do
  timed git -C "$W/long" log --raw --no-renames
  g="$g $T"
done
printf '%-30s %8.3f s   [%s ]\n' "git log --raw --no-renames (C=$C)" "$(echo "$g" | median)" "$g"
