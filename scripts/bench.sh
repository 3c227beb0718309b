#!/usr/bin/env bash
# The benchmark of issue 7: vault against the real `pass` and GnuPG, on the same machine, on
# copies of the same stores; plus the raw cryptographic floor (benches/crypto_floor.rs) and
# vault's peak memory. See docs/performance.md for what is measured and the results.
#
#   scripts/bench.sh [--quick | --smoke] [--agent | --no-agent] [--keep] [--dir DIR] [--reps K]
#
#   --quick   Cv25519 keys only, N = 100 and 1000, R = 5 and 10 (a few minutes)
#             (default: Cv25519 and RSA-3072 keys, N = 100, 1000 and 5000, and for Cv25519
#             R = 10 N = 10000; about 35-40 minutes on 2 cores, most of it waiting for pass and,
#             for RSA-3072, for gpg-agent's private-key operations; longer if vault's walk of
#             the history is slow: the N = 5000 and 10000 stores have 7500 and 15000 commits)
#   --smoke   40 entries, pass and vault once: checks that the script works (figures meaningless)
#   --no-agent  skip the runs with the operator's key in gpg-agent (saves 5-10 minutes of the full
#             run, most of it RSA-3072; --agent, the default, makes them)
#   --keep    keep the working folder (stores, GnuPG home, logs); it is printed either way
#   --dir     working folder (default: a new one under ${TMPDIR:-/tmp})
#   --reps    runs of each vault measurement, each on a fresh copy of the store; the median is
#             reported (default 5; 3 with --quick)
#   --vault BIN --floor BIN
#             measure these binaries instead of building the work tree's (to compare two
#             commits: keep an earlier run's DIR/bin/vault and DIR/bin/crypto_floor)
#
# Everything happens in a private GnuPG home (trust-model always) and temporary stores; your
# ~/.gnupg, ~/.password-store and git configuration are not touched. Results: a Markdown report
# on stdout and in DIR/report.md, raw figures in DIR/results.tsv.
#
# How the stores are made, as pass makes them: gpg generates the keys (ed25519 + cv25519 subkey;
# RSA-3072 + RSA-3072 subkey; no passphrase). `pass init` writes .gpg-id and `pass git init`
# makes the repository, .gpg-id in its first commit. The real gpg encrypts the N entries and N/2
# more messages for edits (`gpg --encrypt-files --compress-algo none`: a fresh session key per
# file, as `pass insert` would, but without one gpg process per entry). One `git fast-import`
# stream then writes the history pass would have written: the ciphertexts, one commit per entry
# ("Add given password for NAME to store.", as `pass insert`), then N/2 commits each rewriting a
# different earlier entry with another ciphertext for the same recipients ("Edit password for
# NAME using vim.", as `pass edit`). The work tree is checked out from HEAD (umask 077, as pass),
# `vault init` adopts the store and `git gc` packs it. Every entry is a distinct message gpg reads.
#
# What is compared, each on its own copy (cp -a) of the same store:
#   add-member     vault add-member   vs  pass init <the R ids> <new id>
#   remove-member  vault remove-member vs pass init <the R ids minus the removed one>
#   key in agent   the same two vault commands without --identity: vault finds the operator's
#                  secret key in the gpg-agent of $GNUPGHOME, where pass finds it too (R = 10;
#                  the agent's cost per entry does not depend on R)
#   agent floor    K PKDECRYPTs with the operator's encryption subkey through one
#                  gpg-connect-agent session, minus the same session without them: the agent's
#                  own cost per entry (it does one at a time: N entries cost at least N times it)
#   audit          vault audit        vs  gpg --batch --list-only --list-packets, once per file
#                                          (what gopass fsck does to find the recipients)
#                                     and git log --raw --no-renames (git's own walk of the
#                                          same history; its output to /dev/null)
#   floor          sequoia alone, one thread, per entry, for the same work on the same
#                  ciphertexts and keys, x N / cores (benches/crypto_floor.rs)
# pass is measured once per point (it takes minutes); above PASS_MAX_N entries its time is
# extrapolated from its per-entry time at PASS_MAX_N (marked "est."): pass spends a constant
# time per entry (three gpg processes). The full run also times pass once at N = 5000 to show it.
# A vault run with the key in the agent expected to take over AGENT_LONG seconds (the agent's time
# per operation x N: RSA-3072 at N = 5000, or 1000 on a slow machine) is made once, not --reps
# times.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

quick=0
keep=0
agent=1
given_vault=""
given_floor=""
work=""
reps=""
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1 ;;
  --smoke) quick=2 ;; # a minute: checks that the script works, figures meaningless
  --keep) keep=1 ;;
  --agent) agent=1 ;;
  --no-agent) agent=0 ;;
  --dir)
    work="$2"
    shift
    ;;
  --reps)
    reps="$2"
    shift
    ;;
  --vault)
    given_vault="$2"
    shift
    ;;
  --floor)
    given_floor="$2"
    shift
    ;;
  -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "bench: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
  esac
  shift
done

# ---- What to measure -----------------------------------------------------------------------
if [ "$quick" = 2 ]; then
  SUITES="cv25519"
  NS_cv25519="40"
  BIG_N=""
  PASS_ONCE=""
  reps="${reps:-1}"
elif [ "$quick" = 1 ]; then
  SUITES="cv25519"
  NS_cv25519="100 1000"
  BIG_N=""            # the N = 10000 point (Cv25519, R = 10): RSS, audit, vault times
  PASS_ONCE=""        # one real pass run above PASS_MAX_N, to show pass is linear
  reps="${reps:-3}"
else
  SUITES="cv25519 rsa3072"
  NS_cv25519="100 1000 5000"
  NS_rsa3072="100 1000 5000"
  BIG_N=10000
  PASS_ONCE="cv25519 10 5000 add"
  reps="${reps:-5}"
fi
RS="5 10"
PASS_MAX_N=1000      # pass is run for N <= this; above, extrapolated (see the header)
AUDIT_N=1000         # audit: vault vs the gpg loop at this N (and BIG_N, gpg loop sampled)
GPG_SAMPLE=1000      # the gpg loop at BIG_N runs on this many files and is scaled up
FLOOR_LIMIT_cv25519=1000 # entries the floor benchmark works on (per-entry cost is averaged)
FLOOR_LIMIT_rsa3072=300  # RSA private-key operations are slow: fewer entries, same precision
R_MAX=10
AGENT_R=10           # the runs with the operator's key in gpg-agent: at this R, every N
AGENT_K=200          # PKDECRYPTs timed through gpg-connect-agent for the agent's floor
AGENT_LONG=20        # a vault run with the agent expected to be longer (s) is made once
if [ "$quick" = 2 ]; then AUDIT_N=40 FLOOR_LIMIT_cv25519=40; fi

# ---- Setup ---------------------------------------------------------------------------------
say() { printf '\033[1m[bench %s]\033[0m %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

scripts/setup.sh
if [ ! -x /usr/bin/time ]; then # GNU time: peak RSS ("Maximum resident set size", %M)
  say "installing GNU time"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends time >/dev/null
fi

# Builds and timing do not mix on a small machine: before each block of measurements, wait (up
# to 15 minutes) until the CPUs are idle (under 15% busy over 3 s: no compilation or test run).
cpu_busy() { # percent of CPU time busy over 3 seconds
  local a b
  a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  sleep 3
  b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
  awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); d = (y[1] - x[1]) + (y[2] - x[2]); print (d > 0) ? int(100 * (y[1] - x[1]) / d) : 0 }'
}
wait_idle() {
  local waited=0 busy
  [ "$quick" = 2 ] && return 0 # --smoke: figures are meaningless anyway
  while busy=$(cpu_busy) && [ "$busy" -ge 15 ]; do
    if [ "$waited" = 0 ]; then say "waiting for the machine to be idle (CPU ${busy}% busy: other builds or tests?)"; fi
    sleep 7
    waited=$((waited + 10))
    if [ "$waited" -ge 900 ]; then
      say "WARNING: still busy after 15 minutes; measuring anyway (results will be noisy)"
      noisy=1
      return
    fi
  done
}
noisy=0

if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/vault-bench.XXXXXX")"
else
  mkdir -p "$work"
  work="$(cd "$work" && pwd)"
fi

if [ -n "$given_vault" ] && [ -n "$given_floor" ]; then
  built_vault="$given_vault"
  floor_built="$given_floor"
  built_from="the given binaries ($given_vault, $given_floor)"
else
  say "building vault (cargo build --release) and the floor benchmark"
  cargo build --release --quiet
  built_vault="$repo/target/release/vault"
  floor_built="$repo/$(cargo bench --bench crypto_floor --no-run 2>&1 |
    sed -n 's/^ *Executable .*(\(.*\))$/\1/p' | tail -n 1)"
  built_from="commit $(git -C "$repo" rev-parse --short HEAD)$(git -C "$repo" diff --quiet HEAD -- src Cargo.toml Cargo.lock benches 2>/dev/null || echo " + uncommitted changes")"
fi
[ -x "$floor_built" ] || { echo "bench: cannot find the crypto_floor benchmark binary" >&2; exit 1; }
# Private copies: a rebuild in the shared target folder during the run must not change what is
# measured.
mkdir -p "$work/bin"
cp "$built_vault" "$work/bin/vault.new" && mv "$work/bin/vault.new" "$work/bin/vault"
cp "$floor_built" "$work/bin/crypto_floor.new" && mv "$work/bin/crypto_floor.new" "$work/bin/crypto_floor"
VAULT="$work/bin/vault"
FLOOR="$work/bin/crypto_floor"
say "working folder: $work"

export GNUPGHOME="$work/gnupg"
mkdir -p -m 700 "$GNUPGHOME"
echo "trust-model always" >"$GNUPGHOME/gpg.conf"
cleanup() {
  gpgconf --kill gpg-agent >/dev/null 2>&1 || true
  if [ "$keep" = 0 ]; then
    rm -rf "$work/base" "$work/pool" "$work/run" "$work/bin"
  fi
}
trap cleanup EXIT

# A neutral environment for pass, git and vault.
unset PASSWORD_STORE_DIR PASSWORD_STORE_KEY PASSWORD_STORE_SIGNING_KEY PASSWORD_STORE_GPG_OPTS \
  PASSWORD_STORE_ENABLE_EXTENSIONS VAULT_IDENTITY RAYON_NUM_THREADS
export GIT_AUTHOR_NAME="Bench Operator" GIT_AUTHOR_EMAIL="op@bench.example"
export GIT_COMMITTER_NAME="Bench Operator" GIT_COMMITTER_EMAIL="op@bench.example"
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
# No automatic (background) git gc: it would run during later measurements.
export GIT_CONFIG_COUNT=3 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main \
  GIT_CONFIG_KEY_1=gc.auto GIT_CONFIG_VALUE_1=0 GIT_CONFIG_KEY_2=maintenance.auto GIT_CONFIG_VALUE_2=false

results="$work/results.tsv"
printf 'kind\tsuite\tR\tN\ttool\tseconds\trss_kib\tcount\tforeign_cores\n' >"$results"
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$results"; }

now_us() { echo "${EPOCHREALTIME/./}"; }
# seconds between two now_us readings, 3 decimals
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e6 }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- Keys ----------------------------------------------------------------------------------
# For each suite, R_MAX + 1 keys: SUITE01 is the operator (its secret key is vault's --identity
# and pass's decryption key in the agent), SUITE01..SUITE<R> are the store's members, the last
# member is the one removed, and SUITE11 is the one added.
declare -A FPR
gen_keys() {
  local suite="$1" prefix i uid fpr algo_primary algo_sub
  case "$suite" in
  cv25519) prefix=cv algo_primary=ed25519 algo_sub=cv25519 ;;
  rsa3072) prefix=rsa algo_primary=rsa3072 algo_sub=rsa3072 ;;
  esac
  for i in $(seq -w 1 $((R_MAX + 1))); do
    uid="$prefix$i <$prefix$i@bench.example>"
    gpg --batch --quiet --passphrase '' --quick-gen-key "$uid" "$algo_primary" sign never 2>/dev/null
    fpr=$(gpg --with-colons --list-keys "<$prefix$i@bench.example>" | awk -F: '/^fpr/ { print $10; exit }')
    gpg --batch --quiet --passphrase '' --quick-add-key "$fpr" "$algo_sub" encr never 2>/dev/null
    FPR[$suite,$((10#$i))]="$fpr"
  done
  gpg --batch --export-secret-keys "${FPR[$suite,1]}" >"$work/$suite.operator.key"
  gpg --batch --armor --export "${FPR[$suite,$((R_MAX + 1))]}" >"$work/$suite.newcomer.asc"
}
prefix_of() { case "$1" in cv25519) echo cv ;; rsa3072) echo rsa ;; esac; }
name_of() { printf '%s%02d' "$(prefix_of "$1")" "$2"; } # the member name vault gives key i
ids() { # the first $2 fingerprints of suite $1
  local i
  for i in $(seq 1 "$2"); do printf '%s ' "${FPR[$1,$i]}"; done
}

# ---- Stores --------------------------------------------------------------------------------
# A pool of encrypted entries per (suite, R), as many as the largest N; a store of N entries
# takes the pool's first N. Entries are spread over 16 folders, as in a real store.
nmax_of() { # largest N needed for (suite, R)
  local suite="$1" R="$2" v="NS_$1" n max=0
  for n in ${!v}; do [ "$n" -gt "$max" ] && max=$n; done
  if [ -n "$BIG_N" ] && [ "$suite" = cv25519 ] && [ "$R" = 10 ]; then max=$BIG_N; fi
  echo "$max"
}
make_pool() { # SUITE R N: N entries and N/2 edits (other messages, for the edit commits)
  local suite="$1" R="$2" n="$3" pool="$work/pool/$1-R$2" i f rcpt=()
  mkdir -p "$pool"
  for f in $(ids "$suite" "$R"); do rcpt+=(-r "$f"); done
  (
    cd "$pool"
    for i in $(seq 0 15); do mkdir -p "team$i"; done
    mkdir -p edits
    : >list
    : >edit-list
    for ((i = 1; i <= n; i++)); do
      f="team$((i % 16))/entry$(printf %05d "$i")"
      printf '%08x%08x%08x\nuser: admin%d\nurl: https://host%d.example.org/login\nnote: generated for the vault benchmark\n' \
        "$SRANDOM" "$SRANDOM" "$SRANDOM" "$i" "$i" >"$f"
      echo "$f" >>list
    done
    for ((i = 1; i <= n / 2; i++)); do
      f="edits/edit$(printf %05d "$i")"
      printf '%08x%08x%08x\nuser: admin%d\nnote: edited for the vault benchmark\n' \
        "$SRANDOM" "$SRANDOM" "$SRANDOM" "$i" >"$f"
      echo "$f" >>edit-list
    done
    # Two gpg processes (one per core), each encrypting its half of the files.
    cat list edit-list >all
    split -n l/2 all part.
    for p in part.*; do
      gpg --batch --quiet --yes --compress-algo none --set-filename "" "${rcpt[@]}" \
        --encrypt-files <"$p" &
    done
    wait
    xargs rm -f <all
    sed 's/$/.gpg/' list >entries
    sed 's/$/.gpg/' edit-list >edits.list
    rm -f all list edit-list part.*
  )
}
# The history pass writes, as one `git fast-import` stream (on stdout): the blobs of the first N
# entries and first N/2 edits of POOL (files read from the current folder), then one commit per
# entry as `pass insert` makes it, then N/2 commits as `pass edit` makes them, each rewriting a
# different entry (a stride over the entries: spread over the folders and the history) with an
# edit's ciphertext. All commits on refs/heads/main after FROM, at time WHEN (pass in a loop
# writes many commits in the same second too). perl (Debian's essential perl-base) reads the
# binary files; git fast-import writes one pack, no loose objects.
history_stream() { # N FROM WHEN (in the pool folder)
  perl -e '
    use strict; use warnings;
    my ($n, $from, $when, $who) = @ARGV;
    my $e = int($n / 2);
    open(my $l, "<", "entries") or die "entries: $!"; chomp(my @ent = <$l>); close $l;
    open($l, "<", "edits.list") or die "edits.list: $!"; chomp(my @ed = <$l>); close $l;
    die "the pool is too small\n" if @ent < $n || @ed < $e;
    @ent = @ent[0 .. $n - 1]; @ed = @ed[0 .. $e - 1];
    binmode STDOUT;
    my $mark = 0;
    for my $f (@ent, @ed) {
      open(my $fh, "<:raw", $f) or die "$f: $!";
      local $/; my $d = <$fh>; close $fh;
      $mark++;
      print "blob\nmark :$mark\ndata ", length($d), "\n", $d, "\n";
    }
    sub commit {
      my ($msg, $blob, $path) = @_;
      print "commit refs/heads/main\nauthor $who $when +0000\ncommitter $who $when +0000\n";
      print "data ", length($msg), "\n", $msg;
      if ($from ne "") { print "from $from\n"; $from = ""; }
      print "M 100644 :$blob $path\n\n";
    }
    for my $i (0 .. $n - 1) {
      (my $name = $ent[$i]) =~ s/\.gpg$//;
      commit("Add given password for $name to store.\n", $i + 1, $ent[$i]);
    }
    for my $k (0 .. $e - 1) {
      my $j = ($k * 7919) % $n; # 7919 is prime: distinct entries unless N is a multiple of it
      (my $name = $ent[$j]) =~ s/\.gpg$//;
      commit("Edit password for $name using vim.\n", $n + $k + 1, $ent[$j]);
    }
    print "done\n";
  ' "$1" "$2" "$3" "$GIT_COMMITTER_NAME <$GIT_COMMITTER_EMAIL>"
}
# base/SUITE-R<R>-N<N>: a pass store with pass's history (see the header), adopted by vault, its
# trust anchor pinned by vault init.
make_store() {
  local suite="$1" R="$2" N="$3"
  local pool="$work/pool/$suite-R$R" store="$work/base/$suite-R$R-N$N" head when
  mkdir -p "$store"
  # shellcheck disable=SC2046
  PASSWORD_STORE_DIR="$store" pass init $(ids "$suite" "$R") >/dev/null
  PASSWORD_STORE_DIR="$store" pass git init >/dev/null
  head=$(git -C "$store" rev-parse HEAD)
  when=$(git -C "$store" log -1 --format=%ct)
  if ! (cd "$pool" && history_stream "$N" "$head" "$when") |
    git -C "$store" fast-import --quiet --done >"$store.import.log" 2>&1; then
    echo "bench: git fast-import failed for $store:" >&2
    tail -n 20 "$store.import.log" >&2
    exit 1
  fi
  # The work tree from HEAD, files 0600 and folders 0700 as pass (umask 077) makes them.
  (umask 077 && git -C "$store" reset -q --hard)
  "$VAULT" --store "$store" --identity "$work/$suite.operator.key" init >"$store.init.log" 2>&1
  git -C "$store" gc -q # a store that has lived a while is packed
}

# ---- Measurements --------------------------------------------------------------------------
mkdir -p "$work/run" "$work/logs"
# Copies are not deleted until the end: on ext4 without a journal (as here), creating files soon
# after thousands were deleted is much slower (the kernel skips inodes freed in the last 30-60 s),
# and deleting the previous copy would put that cost on the next measurement.
fresh_copy() { # $1: base store name -> prints the path of a fresh copy
  local dst
  dst=$(mktemp -d "$work/run/$1.XXXXXX")
  cp -a "$work/base/$1/." "$dst/"
  # A copy has new inode numbers and ctimes, so git's index no longer matches the files' stat
  # data and `git status` (vault checks the store is clean) would re-hash every file: refresh
  # the index, as in a real checkout, where it matches.
  git -C "$dst" update-index -q --refresh >/dev/null 2>&1 || true
  echo "$dst"
}

# ---- Timing, with a check for interference -------------------------------------------------
CLK_TCK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8; exit }' /proc/stat; }
agent_ticks() { # CPU of this run's gpg-agent: it decrypts for pass, outside pass's process tree
  local p
  p=$(pgrep -f -- "gpg-agent --homedir $GNUPGHOME" | head -n 1 || true)
  if [ -n "$p" ] && [ -r "/proc/$p/stat" ]; then awk '{ print $14 + $15 }' "/proc/$p/stat"; else echo 0; fi
}
# measure LOG CMD...: runs CMD (output in LOG) under GNU time. Sets T (wall seconds), RSS (peak
# KiB), and FOREIGN: the CPU other processes used meanwhile, in cores on average (0.50 = half a
# core), to detect interference from other work on the machine. Exit codes 0 and 3 (audit:
# "needs attention") are accepted.
measure() {
  local log="$1" rc=0 t0 t1 b0 b1 a0 a1 u s
  shift
  a0=$(agent_ticks)
  b0=$(busy_ticks)
  t0=$(now_us)
  /usr/bin/time -f '%M %U %S' -o "$log.time" "$@" >"$log" 2>&1 || rc=$?
  t1=$(now_us)
  b1=$(busy_ticks)
  a1=$(agent_ticks)
  if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
    echo "bench: $* failed (exit $rc):" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  read -r RSS u s < <(tail -n 1 "$log.time")
  T=$(secs "$t0" "$t1")
  # Ticks are 1/CLK_TCK s: under 5 ticks of others' CPU is within the error, counted as none.
  FOREIGN=$(awk -v b=$((b1 - b0)) -v a=$((a1 - a0)) -v hz="$CLK_TCK" -v u="$u" -v s="$s" -v t="$T" \
    'BEGIN { f = (b - a) / hz - u - s; if (f < 5 / hz) f = 0; printf "%.2f", (t > 0) ? f / t : 0 }')
}
# run_retry MAXF MAXTRIES LOG BASE CMD...: measure, again (up to MAXTRIES in all) while other
# processes used more than MAXF cores during the run. Unless BASE is "-", each try runs on a fresh
# copy of base/BASE, substituted for @STORE@ in CMD's arguments; S is the store used.
VAULT_MAXF=0.25 # vault uses both cores: a quarter of a core taken by others is interference
SERIAL_MAXF=0.5 # pass and the gpg loop use one core at a time
run_retry() {
  local maxf="$1" maxtries="$2" log="$3" base="$4" try=0 args a
  shift 4
  while :; do
    try=$((try + 1))
    S=""
    if [ "$base" != - ]; then
      S=$(fresh_copy "$base")
      sync
    fi
    args=()
    for a in "$@"; do args+=("${a//@STORE@/$S}"); done
    measure "$log" "${args[@]}"
    if awk -v f="$FOREIGN" -v m="$maxf" 'BEGIN { exit !(f <= m) }' || [ "$try" -ge "$maxtries" ]; then
      break
    fi
    say "    (other processes used $FOREIGN cores during that run: measuring again)"
  done
}

# Reencrypted entries in HEAD's vault commit (its Vault-Reencrypted trailer).
vault_count() { git -C "$1" log -1 --format=%B | awk -F': ' '/^Vault-Reencrypted:/ { print $2 }'; }
# Entries pass re-encrypted in its HEAD commit (changed *.gpg files).
pass_count() { git -C "$1" show --name-only --format= HEAD | grep -c '\.gpg$' || true; }

# vault_cmd OP SUITE R: sets VCMD, the vault command line for OP on the store @STORE@. OP ending
# in -agent: without --identity, vault asks the gpg-agent of $GNUPGHOME for the operator's key.
vault_cmd() {
  local op="$1" suite="$2" R="$3"
  VCMD=("$VAULT" --store @STORE@)
  case "$op" in
  *-agent) op="${op%-agent}" ;;
  *) VCMD+=(--identity "$work/$suite.operator.key") ;;
  esac
  VCMD+=(--yes)
  case "$op" in
  add) VCMD+=(add-member "$work/$suite.newcomer.asc" --name "$(name_of "$suite" $((R_MAX + 1)))"
    --fingerprint "${FPR[$suite,$((R_MAX + 1))]}") ;;
  remove) VCMD+=(remove-member "$(name_of "$suite" "$R")") ;;
  audit) VCMD+=(audit) ;;
  members) VCMD+=(members) ;;
  verify) VCMD+=(verify) ;;
  esac
}

# bench_vault OP SUITE R N [KIND [ENV...]]: vault OP, REPS times (or VREPS, if set; changes each
# on a fresh copy); records the median time, the peak RSS and the most interference seen, as KIND
# (default OP), and the number of runs.
bench_vault() {
  local op="$1" suite="$2" R="$3" N="$4" kind="${5:-$1}" base="$2-R$3-N$4" times="" maxrss=0
  local maxf=0 k count="" copy=- med runs="${VREPS:-$reps}"
  shift 5 2>/dev/null || shift $#
  case "$op" in add | remove | add-agent | remove-agent) copy="$base" ;; esac
  vault_cmd "$op" "$suite" "$R"
  [ "$copy" = - ] && VCMD=("${VCMD[@]/@STORE@/$work/base/$base}")
  for k in $(seq 1 "$runs"); do
    run_retry "$VAULT_MAXF" 4 "$work/logs/$base.$kind.$k" "$copy" env "$@" "${VCMD[@]}"
    times="$times $T"
    [ "$RSS" -gt "$maxrss" ] && maxrss=$RSS
    maxf=$(awk -v a="$maxf" -v b="$FOREIGN" 'BEGIN { print (b > a) ? b : a }')
    [ -n "$S" ] && count=$(vault_count "$S")
  done
  if [ "$copy" != - ] && [ "$count" != "$N" ]; then
    say "WARNING: vault $op re-encrypted $count entries, expected $N"
  fi
  med=$(echo "$times" | median)
  record "$kind" "$suite" "$R" "$N" vault "$med" "$maxrss" "${count:-$N}" "$maxf"
  record runs "$suite" "$R" "$N" "$kind" "$runs" "" "" ""
  say "  vault $kind  $suite R=$R N=$N: median $med s of [$times ], peak RSS $((maxrss / 1024)) MiB"
}

# pass init making the same change, once (again if disturbed), on a fresh copy.
bench_pass() {
  local op="$1" suite="$2" R="$3" N="$4" base="$2-R$3-N$4" newids count
  if [ "$op" = add ]; then
    newids="$(ids "$suite" "$R") ${FPR[$suite,$((R_MAX + 1))]}"
  else
    newids="$(ids "$suite" $((R - 1)))"
  fi
  # shellcheck disable=SC2086
  run_retry "$SERIAL_MAXF" 2 "$work/logs/$base.pass-$op" "$base" env PASSWORD_STORE_DIR=@STORE@ pass init $newids
  count=$(pass_count "$S")
  [ "$count" = "$N" ] || say "WARNING: pass init ($op) re-encrypted $count entries, expected $N"
  record "$op" "$suite" "$R" "$N" pass "$T" "" "$count" "$FOREIGN"
  say "  pass init ($op)  $suite R=$R N=$N: $T s ($count entries re-encrypted)"
}

# One `gpg --list-only --list-packets` per file (sampled above GPG_SAMPLE files, then scaled).
bench_gpg_loop() {
  local suite="$1" R="$2" N="$3" base="$1-R$2-N$3" files n tool=gpg-loop t
  files="$work/logs/$base.files"
  (cd "$work/base/$base" && find . -path ./.git -prune -o -name '*.gpg' -type f -print | sort) >"$files"
  if [ "$N" -gt "$GPG_SAMPLE" ]; then
    shuf -n "$GPG_SAMPLE" --random-source=<(yes) "$files" >"$files.sample"
    files="$files.sample"
    tool=gpg-loop-est
  fi
  n=$(wc -l <"$files")
  # shellcheck disable=SC2016
  run_retry "$SERIAL_MAXF" 2 "$work/logs/$base.gpg-loop" - bash -c \
    'cd "$1" && while read -r f; do gpg --batch --list-only --list-packets "$f" >/dev/null 2>&1; done <"$2"' \
    _ "$work/base/$base" "$files"
  t=$(awk -v s="$T" -v n="$n" -v N="$N" 'BEGIN { printf "%.3f", s * N / n }')
  record audit "$suite" "$R" "$N" "$tool" "$t" "" "$n" "$FOREIGN"
  say "  gpg --list-packets loop $suite R=$R N=$N: $t s ($n files run)"
}

# git's own walk of the same history, REPS times (median): what vault audit's history walk is
# compared with (the store's base copy; nothing is written).
bench_gitlog() {
  local suite="$1" R="$2" N="$3" base="$1-R$2-N$3" times="" k maxf=0 med
  for k in $(seq 1 "$reps"); do
    # shellcheck disable=SC2016
    run_retry "$SERIAL_MAXF" 3 "$work/logs/$base.git-log.$k" - sh -c \
      'git -C "$1" log --raw --no-renames >/dev/null' _ "$work/base/$base"
    times="$times $T"
    maxf=$(awk -v a="$maxf" -v b="$FOREIGN" 'BEGIN { print (b > a) ? b : a }')
  done
  med=$(echo "$times" | median)
  record audit "$suite" "$R" "$N" git-log "$med" "" "$(git -C "$work/base/$base" rev-list --count HEAD)" "$maxf"
  say "  git log --raw --no-renames $suite R=$R N=$N: median $med s of [$times ]"
}

# The agent's own cost per entry: AGENT_K PKDECRYPTs with the operator's encryption subkey, of
# the session key of one of the store's entries, through one gpg-connect-agent session (each
# SETKEY + PKDECRYPT, the ciphertext given at the agent's INQUIRE, as gpg and vault do), minus the
# same session without them (the process and the connection). A `gpg --decrypt` per entry would
# mostly time gpg's start-up. The keys have no passphrase (generated with --passphrase ''), and
# pinentry-mode=error makes a locked key fail at once rather than wait for a pinentry. Median
# of at least 3 runs of each session (--smoke too: the difference is small at Cv25519). Sets
# AGENT_OK[SUITE] if the agent decrypts with the operator's key, and AGENT_MS[SUITE] (ms per
# operation) if the difference is above the noise.
declare -A AGENT_MS AGENT_OK
bench_agent_floor() {
  local suite="$1" pool="$work/pool/$1-R$R_MAX" keyid="" grip="" file ct kk i k ok ms
  local t0s="" tks="" in log
  read -r keyid grip < <(gpg --with-colons --with-keygrip -K "${FPR[$suite,1]}" |
    awk -F: '$1 == "ssb" && $12 ~ /e/ { k = $5; next } k != "" && $1 == "grp" { print k, $10; exit }') || true
  file="$pool/$(head -n 1 "$pool/entries")"
  # The PKESK for that subkey, as gpg prints it with --debug mpi, as the S-expression gpg gives the
  # agent: RSA (a), ECDH (s: the wrapped key, e: the ephemeral point).
  if [ -z "$grip" ] || ! ct=$(gpg --batch --debug mpi --list-packets "$file" 2>/dev/null | awk -v id="$keyid" '
      /^:pubkey enc packet:/ { on = ($NF == id); if (on) { algo = $7 + 0; n = 0 }; next }
      /^[#:]/ { on = 0; next }
      on && $1 == "data:" { d[++n] = $2 }
      END {
        if (algo == 1 && n >= 1) printf "(enc-val(rsa(a #%s#)))", d[1]
        else if (algo == 18 && n >= 2) printf "(enc-val(ecdh(s #%s#)(e #%s#)))", d[2], d[1]
        else exit 1
      }'); then
    say "WARNING: $suite: cannot find the operator's PKESK in $file: no agent floor, no agent runs"
    return 0
  fi
  printf '%s' "$ct" >"$work/logs/agent-floor.$suite.ct"
  for kk in 0 "$AGENT_K"; do
    {
      echo "OPTION pinentry-mode=error"
      echo "/definqfile CIPHERTEXT $work/logs/agent-floor.$suite.ct"
      for ((i = 0; i < kk; i++)); do printf 'SETKEY %s\nPKDECRYPT\n' "$grip"; done
      echo /bye
    } >"$work/logs/agent-floor.$suite.$kk.in"
  done
  # Once unmeasured: the agent is running and has read its files.
  in="$work/logs/agent-floor.$suite.$AGENT_K.in"
  log="$work/logs/agent-floor.$suite"
  gpg-connect-agent <"$in" >"$log.warmup" 2>&1 || true
  ok=$(grep -ac '^D ' "$log.warmup" || true)
  if [ "$ok" != "$AGENT_K" ]; then
    say "WARNING: $suite: gpg-agent decrypted $ok of $AGENT_K (see $log.warmup): no agent floor, no agent runs"
    return 0
  fi
  AGENT_OK[$suite]=1
  for k in $(seq 1 $((reps > 3 ? reps : 3))); do
    for kk in 0 "$AGENT_K"; do
      # shellcheck disable=SC2016
      run_retry "$SERIAL_MAXF" 3 "$log.$kk.$k" - bash -c 'gpg-connect-agent <"$1"' _ \
        "$work/logs/agent-floor.$suite.$kk.in"
      if [ "$kk" = 0 ]; then t0s="$t0s $T"; else tks="$tks $T"; fi
    done
  done
  ms=$(awk -v a="$(echo "$t0s" | median)" -v b="$(echo "$tks" | median)" -v k="$AGENT_K" \
    'BEGIN { printf "%.3f", (b - a) / k * 1000 }')
  say "  gpg-agent PKDECRYPT $suite: $ms ms per operation ($AGENT_K in one session: [$tks ] s; without them: [$t0s ] s)"
  if awk -v m="$ms" 'BEGIN { exit !(m > 0) }'; then
    AGENT_MS[$suite]=$ms
    record agent-floor "$suite" "" "" ms_per_op "$ms" "" "$AGENT_K" "$FOREIGN"
  else
    say "WARNING: $suite: the agent's floor is lost in the noise (raise AGENT_K): not reported"
  fi
}

bench_floor() {
  local suite="$1" R="$2" base="$1-R$2-N$AUDIT_N" lim="FLOOR_LIMIT_$1" out line
  out="$work/logs/floor.$suite-R$R"
  run_retry "$VAULT_MAXF" 3 "$out" - "$FLOOR" --store "$work/base/$base" \
    --identity "$work/$suite.operator.key" --add "$work/$suite.newcomer.asc" \
    --remove "${FPR[$suite,$R]}" --limit "${!lim}" --label "$suite, R=$R (gpg-made store)"
  grep -v '^floor:' "$out" | sed 's/^/    /' >&2
  line=$(grep '^floor:' "$out")
  get() { echo "$line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
  record floor "$suite" "$R" "" cores "$(get cores)" "" "" "$FOREIGN"
  local f
  for f in add remove audit par_add par_remove; do
    record "floor_$f" "$suite" "$R" "" us_per_entry "$(get "${f}_us")" "" "$(get entries)" "$FOREIGN"
  done
}

# A timeline of one vault run from perf samples (if perf and its syscall tracepoints are usable):
# start-up (load, trust check, plan) until rayon's threads start; the parallel per-entry phase;
# the per-entry work and the commit (tree, signature) until the first syncfs; the work-tree update
# until the second. Prints "spawn sync1 sync2 end cpu_main cpu_workers" in seconds.
timeline() {
  local data="$work/logs/perf.$$.data"
  command -v perf >/dev/null || return 1
  perf record -q -o "$data" -F 2000 -e cpu-clock -e syscalls:sys_enter_syncfs \
    -e syscalls:sys_enter_clone3 "$@" >/dev/null 2>&1 || return 1
  perf script -i "$data" -F tid,time,event 2>/dev/null | awk '
    { t = $2; sub(":", "", t); t += 0; if (t0 == "") { t0 = t; main = $1 }
      if ($3 ~ /syncfs/) sync[++n] = t - t0
      else if ($3 ~ /clone3/) { if (spawn == "") spawn = t - t0 }
      else if ($1 == main) cm++; else cw++
      last = t - t0 }
    END { if (spawn == "" || n < 2) exit 1
          printf "%.3f %.3f %.3f %.3f %.3f %.3f\n", spawn, sync[1], sync[2], last, cm / 2000, cw / 2000 }'
  local rc=$?
  rm -f "$data" "$data.old"
  return $rc
}

# Where vault's time goes, at the issue's target point (Cv25519, N = 1000, R = 10).
bench_breakdown() {
  local suite=cv25519 R=10 N=1000 base=cv25519-R10-N1000 op k tl shm
  [ -d "$work/base/$base" ] || return 0
  bench_vault members "$suite" "$R" "$N"
  bench_vault verify "$suite" "$R" "$N"
  bench_vault add "$suite" "$R" "$N" add-1thread RAYON_NUM_THREADS=1
  bench_vault remove "$suite" "$R" "$N" remove-1thread RAYON_NUM_THREADS=1
  # The same changes with the store in memory (tmpfs): what the file system costs.
  if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    for op in add remove; do
      local times=""
      for k in $(seq 1 "$reps"); do
        shm=$(mktemp -d /dev/shm/vault-bench.XXXXXX)
        cp -a "$work/base/$base/." "$shm/"
        git -C "$shm" update-index -q --refresh >/dev/null 2>&1 || true
        vault_cmd "$op" "$suite" "$R"
        measure "$work/logs/$base.$op-tmpfs.$k" "${VCMD[@]/@STORE@/$shm}"
        times="$times $T"
        rm -rf "$shm"
      done
      record "$op-tmpfs" "$suite" "$R" "$N" vault "$(echo "$times" | median)" "" "" ""
      say "  vault $op on tmpfs  $suite R=$R N=$N: median $(echo "$times" | median) s of [$times ]"
    done
  fi
  # Timelines (perf), on disk.
  for op in add remove; do
    for k in 1 2 3; do
      S=$(fresh_copy "$base")
      sync
      vault_cmd "$op" "$suite" "$R"
      if tl=$(timeline "${VCMD[@]/@STORE@/$S}"); then
        record "$op-timeline" "$suite" "$R" "$N" perf "$tl" "" "" ""
        say "  timeline of vault $op (s): $tl"
      else
        say "  (no timeline: perf or its syscall tracepoints are not usable here)"
        break 2
      fi
    done
  done
}

# ---- Run -----------------------------------------------------------------------------------
for suite in $SUITES; do
  say "$suite: generating $((R_MAX + 1)) keys with gpg"
  gen_keys "$suite"
  nsv="NS_$suite"
  for R in $RS; do
    nmax=$(nmax_of "$suite" "$R")
    say "$suite R=$R: encrypting $nmax entries and $((nmax / 2)) edits with gpg"
    make_pool "$suite" "$R" "$nmax"
    for N in ${!nsv}; do
      say "$suite R=$R N=$N: history of $N entries and $((N / 2)) edits (git fast-import), vault init"
      make_store "$suite" "$R" "$N"
    done
    if [ -n "$BIG_N" ] && [ "$nmax" = "$BIG_N" ]; then make_store "$suite" "$R" "$BIG_N"; fi
  done
  say "$suite: stores ready: $(cd "$work/base" && ls -d "$suite"-*[0-9] | tr '\n' ' ')"
done
if [ "$quick" != 2 ]; then
  say "letting the file system settle (60 s: see fresh_copy)"
  sync
  sleep 60
fi

for suite in $SUITES; do
  nsv="NS_$suite"
  if [ "$agent" = 1 ]; then
    wait_idle
    say "$suite: gpg-agent's own cost per PKDECRYPT"
    bench_agent_floor "$suite"
  fi
  for R in $RS; do
    wait_idle
    say "$suite R=$R: crypto floor (benches/crypto_floor.rs)"
    bench_floor "$suite" "$R"
    for N in ${!nsv}; do
      wait_idle
      bench_vault add "$suite" "$R" "$N"
      bench_vault remove "$suite" "$R" "$N"
      if [ "$agent" = 1 ] && [ "$R" = "$AGENT_R" ] && [ -n "${AGENT_OK[$suite]:-}" ]; then
        # Once only if long (RSA-3072 at N = 5000: minutes), else as many runs as the others.
        agent_runs=$(awk -v ms="${AGENT_MS[$suite]:-0}" -v n="$N" -v l="$AGENT_LONG" -v r="$reps" \
          'BEGIN { print (ms * n / 1000 > l) ? 1 : r }')
        VREPS=$agent_runs bench_vault add-agent "$suite" "$R" "$N"
        VREPS=$agent_runs bench_vault remove-agent "$suite" "$R" "$N"
      fi
      bench_vault audit "$suite" "$R" "$N"
      bench_gitlog "$suite" "$R" "$N"
      if [ "$N" -le "$PASS_MAX_N" ]; then
        wait_idle
        bench_pass add "$suite" "$R" "$N"
        bench_pass remove "$suite" "$R" "$N"
      fi
    done
    if [ "$R" = 10 ]; then
      wait_idle
      bench_gpg_loop "$suite" "$R" "$AUDIT_N"
    fi
  done
done

if [ -n "$BIG_N" ]; then
  wait_idle
  say "cv25519 R=10 N=$BIG_N: vault (time and peak RSS), gpg loop sampled"
  bench_vault add cv25519 10 "$BIG_N"
  bench_vault remove cv25519 10 "$BIG_N"
  bench_vault audit cv25519 10 "$BIG_N"
  bench_gitlog cv25519 10 "$BIG_N"
  bench_gpg_loop cv25519 10 "$BIG_N"
fi
if [ -n "$PASS_ONCE" ]; then
  wait_idle
  read -r ps pr pn pop <<<"$PASS_ONCE"
  say "$ps R=$pr N=$pn: pass init ($pop), once (minutes)"
  bench_pass "$pop" "$ps" "$pr" "$pn"
fi
wait_idle
say "where the time goes (cv25519 R=10 N=1000)"
bench_breakdown

# ---- Report --------------------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
{
  echo "# vault benchmark results"
  echo
  echo "Machine: $(nproc) cores, $cpu, $mem RAM; $(uname -sr); $(gpg --version | head -n 1), pass $(pass version 2>/dev/null | awk '/v[0-9]/ { for (i = 1; i <= NF; i++) if ($i ~ /^v[0-9]/) print $i }' | head -n 1)."
  echo "vault: $built_from (release build, copied at the start of the run)."
  echo "Run: $(date -u +%Y-%m-%dT%H:%MZ), scripts/bench.sh$(case "$quick" in 1) echo " --quick" ;; 2) echo " --smoke" ;; esac), vault median of $reps runs each on a fresh copy; pass once per point. Stores with pass's history: one commit per entry, then N/2 edit commits."
  [ "$noisy" = 1 ] && echo "WARNING: other compilations were running during part of the run: figures are noisy."
  echo
  awk -F'\t' -v agent_long="$AGENT_LONG" -f - "$results" <<'AWK'
NR == 1 { next }
{
  if ($9 != "" && $9 + 0 > mf[$5] + 0) mf[$5] = $9
  if ($5 == "perf") { tl[++ntl] = $6; tlop[ntl] = $1; next }
  key = $2 SUBSEP $3 SUBSEP $4
  if ($1 == "runs") nruns[$5, key] = $6
  else if ($1 == "agent-floor") { if (!($2 in am)) aorder[++na] = $2; am[$2] = $6; ak[$2] = $8 }
  else if ($5 == "git-log") { gl[key] = $6; glc[key] = $8 }
  else if ($1 == "floor") cores[$2 SUBSEP $3] = $6
  else if ($1 ~ /^floor_/) { fl[$1, $2 SUBSEP $3] = $6; if (!(($2 SUBSEP $3) in seenf)) { seenf[$2 SUBSEP $3] = 1; forder[++nf] = $2 SUBSEP $3 } }
  else if ($5 == "vault") { if ($1 ~ /-agent$/) hasagent = 1; v[$1, key] = $6; rss[$1, key] = $7; pts[$1, key] = 1; if ($1 == "add" || $1 == "remove" || $1 == "audit") order[++n] = $1 SUBSEP key }
  else if ($5 == "pass") { p[$1, key] = $6 }
  else if ($5 ~ /^gpg-loop/) { g[key] = $6; gest[key] = ($5 == "gpg-loop-est"); gn[key] = $8 }
}
# table(TITLE, HEADER): a section heading (unless TITLE is "") and a Markdown table header.
function table(title, header,    n, cols, sep, i) {
  if (title != "") { print "## " title; print "" }
  n = split(header, cols, "|") - 2
  sep = "|"; for (i = 1; i <= n; i++) sep = sep "---|"
  print header; print sep
}
function fmt(x) { return (x == "") ? "–" : sprintf("%.2f", x) }
function fmt3(x) { return (x == "") ? "–" : sprintf("%.3f", x) }
function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.0fx", a / b) }
function ratio1(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2fx", a / b) }
# pass time at (op, suite, R, N): measured, else extrapolated from the largest measured N
function pass_time(op, s, r, N,    k, best, bn, parts) {
  k = op SUBSEP s SUBSEP r SUBSEP N
  if (k in p) { est = 0; return p[k] }
  best = ""; bn = 0
  for (k in p) { split(k, parts, SUBSEP); if (parts[1] == op && parts[2] == s && parts[3] == r && parts[4] + 0 > bn && parts[4] + 0 < N + 0) { bn = parts[4] + 0; best = p[k] } }
  if (best == "") { est = 0; return "" }
  est = 1; return best / bn * N
}
# vault with the operator's key in gpg-agent (no --identity), against the same change with the key
# file and against pass; the agent's own floor is N x its time per PKDECRYPT (one at a time).
function agent_table(    i, j, parts, s, r, N, k, op, va, vf, pt, e, af, line, once) {
  if (!hasagent) return
  table("The operator's key in gpg-agent: vault without --identity", "| keys | R | N | change | vault, agent (s) | vault, key file (s) | agent / key file | pass / vault-agent | agent floor (s) | vault-agent / agent floor |")
  for (i = 1; i <= n; i++) {
    split(order[i], parts, SUBSEP); op = parts[1]
    if (op != "add" && op != "remove") continue
    s = parts[2]; r = parts[3]; N = parts[4]; k = s SUBSEP r SUBSEP N
    if (!((op "-agent", k) in v)) continue
    va = v[op "-agent", k]; vf = v[op, k]; pt = pass_time(op, s, r, N); e = est
    af = (s in am) ? am[s] * N / 1000 : ""
    if (nruns[op "-agent", k] == 1 && nruns[op, k] > 1) { once = 1; line = " (1 run)" } else line = ""
    printf "| %s | %s | %s | %s-member | %s%s | %s | %s | %s%s | %s | %s |\n", s, r, N, op, fmt(va), line, fmt(vf), ratio1(va, vf), ratio(pt, va), (e ? " (est.)" : ""), (af == "" ? "–" : sprintf("%.3f", af)), ratio1(va, af)
  }
  print ""
  if (na > 0) {
    line = "gpg-agent's own time per PKDECRYPT (the operator's encryption subkey, one entry's session key, in one gpg-connect-agent session, minus that session alone):"
    for (j = 1; j <= na; j++) line = line sprintf(" %s %.3f ms (%d operations)%s", aorder[j], am[aorder[j]], ak[aorder[j]], (j < na) ? ";" : ".")
    print line
  }
  if (once) print "(1 run): a run expected to take over " agent_long " s (the agent's time per operation x N) is made once, not median of several."
  print ""
}
function change_table(op, title,    i, parts, s, r, N, k, vt, pt, ft, c, flk, e) {
  table(title, "| keys | R | N | pass / vault | vault / floor | vault (s) | pass init (s) | floor (s) | pass per entry (ms) |")
  for (i = 1; i <= n; i++) {
    split(order[i], parts, SUBSEP); if (parts[1] != op) continue
    s = parts[2]; r = parts[3]; N = parts[4]; k = s SUBSEP r SUBSEP N
    vt = v[op, k]; pt = pass_time(op, s, r, N); e = est
    c = cores[s SUBSEP r]; ft = ""
    if ((("floor_" op), s SUBSEP r) in fl && c > 0) ft = fl["floor_" op, s SUBSEP r] * N / c / 1e6
    printf "| %s | %s | %s | %s%s | %s | %s | %s%s | %s | %s |\n", s, r, N, ratio(pt, vt), (e ? " (est.)" : ""), ratio1(vt, ft), fmt(vt), fmt(pt), (e ? " (est.)" : ""), (ft == "" ? "–" : sprintf("%.3f", ft)), (pt == "" ? "–" : sprintf("%.1f", pt / N * 1000))
  }
  print ""
}
END {
  printf "Interference check: during the runs kept, other processes used at most %.2f cores (vault runs), %.2f (pass), %.2f (gpg loop), %.2f (git log), %.2f (agent floor), %.2f (floor); vault runs are repeated above 0.25, the others above 0.5 (pass and the gpg loop once).\n\n", mf["vault"], mf["pass"], (mf["gpg-loop"] > mf["gpg-loop-est"]) ? mf["gpg-loop"] : mf["gpg-loop-est"], mf["git-log"], mf["ms_per_op"], mf["us_per_entry"]
  change_table("add", "add-member: vault add-member vs pass init with the new id")
  change_table("remove", "remove-member: vault remove-member vs pass init without the member")
  agent_table()
  table("audit: vault audit vs git's own walk of the history (`git log --raw --no-renames`) and one `gpg --list-only --list-packets` per file", "| keys | R | N | commits | vault (s) | git log (s) | vault / git log | gpg loop (s) | gpg loop / vault | gpg loop per file (ms) |")
  for (i = 1; i <= n; i++) {
    split(order[i], parts, SUBSEP); if (parts[1] != "audit") continue
    k = parts[2] SUBSEP parts[3] SUBSEP parts[4]
    gk = (k in g) ? g[k] : ""; ge = (k in g) && gest[k]; lk = (k in gl) ? gl[k] : ""
    printf "| %s | %s | %s | %s | %s | %s | %s | %s%s | %s%s | %s |\n", parts[2], parts[3], parts[4], (k in glc) ? glc[k] : "–", fmt3(v["audit", k]), fmt3(lk), ratio1(v["audit", k], lk), fmt(gk), (ge ? " (est.: " gn[k] " files timed, scaled)" : ""), ratio(gk, v["audit", k]), (ge ? " (est.)" : ""), (gk == "") ? "–" : sprintf("%.1f", gk / parts[4] * 1000)
  }
  print ""
  table("Crypto floor per entry (sequoia alone, one thread; benches/crypto_floor.rs)", "| keys | R | add-member (µs) | remove-member (µs) | audit parse (µs) | cores | rayon speed-up add / remove |")
  for (j = 1; j <= nf; j++) {
    k = forder[j]
    split(k, parts, SUBSEP)
    printf "| %s | %s | %.0f | %.0f | %.1f | %s | %.2fx / %.2fx |\n", parts[1], parts[2], fl["floor_add", k], fl["floor_remove", k], fl["floor_audit", k], cores[k], fl["floor_add", k] / fl["floor_par_add", k], fl["floor_remove", k] / fl["floor_par_remove", k]
  }
  print ""
  table("Peak RSS of vault (MiB, max over the runs)", "| keys | R | N | add-member | remove-member | audit |")
  for (i = 1; i <= n; i++) {
    split(order[i], parts, SUBSEP); if (parts[1] != "audit") continue
    k = parts[2] SUBSEP parts[3] SUBSEP parts[4]
    if (parts[4] < 1000) continue
    printf "| %s | %s | %s | %.1f | %.1f | %.1f |\n", parts[2], parts[3], parts[4], rss["add", k] / 1024, rss["remove", k] / 1024, rss["audit", k] / 1024
  }
  print ""
  k = "cv25519" SUBSEP 10 SUBSEP 1000
  if (("members", k) in v) {
    table("Where the time goes (Cv25519, R = 10, N = 1000; medians, s)", "| vault members (open + load) | vault verify | add-member | add-member, 1 thread | remove-member | remove-member, 1 thread |")
    printf "| %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", v["members", k], v["verify", k], v["add", k], v["add-1thread", k], v["remove", k], v["remove-1thread", k]
    print ""
    if (("add-tmpfs", k) in v) printf "With the store on tmpfs (no disk): add-member %.3f s, remove-member %.3f s.\n\n", v["add-tmpfs", k], v["remove-tmpfs", k]
    if (ntl > 0) {
      print "Timelines of single runs on disk (perf samples at 2 kHz; seconds from the start):"
      print ""
      table("", "| change | start-up (load, trust check, plan) | per-entry work, blobs, commit, sync | work tree, index, sync | finish | total | CPU main thread | CPU worker threads |")
      for (i = 1; i <= ntl; i++) { split(tl[i], x, " "); sub(/-timeline/, "", tlop[i]); printf "| %s-member | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f |\n", tlop[i], x[1], x[2] - x[1], x[3] - x[2], x[4] - x[3], x[4], x[5], x[6] }
      print ""
    }
  }
  # The issue's targets, at Cv25519, N = 1000, R = 10 (RSS at N = 10000).
  print "## Targets (Cv25519, N = 1000, R = 10; RSS at N = 10000)"
  print ""
  k = "cv25519" SUBSEP 10 SUBSEP 1000; c = cores["cv25519" SUBSEP 10]
  if (!(("add", k) in v) || !(("remove", k) in v) || c == 0 || pass_time("add", "cv25519", 10, 1000) == "") { print "(not measured in this run)"; exit }
  a = pass_time("add", "cv25519", 10, 1000) / v["add", k]
  r = pass_time("remove", "cv25519", 10, 1000) / v["remove", k]
  fa = v["add", k] / (fl["floor_add", "cv25519" SUBSEP 10] * 1000 / c / 1e6)
  fr = v["remove", k] / (fl["floor_remove", "cv25519" SUBSEP 10] * 1000 / c / 1e6)
  au = (k in g) ? g[k] / v["audit", k] : 0
  big = "cv25519" SUBSEP 10 SUBSEP 10000
  mr = 0
  if (("add", big) in rss) { mr = rss["add", big]; if (rss["remove", big] > mr) mr = rss["remove", big]; if (rss["audit", big] > mr) mr = rss["audit", big] }
  printf "- add-member >= 100x faster than pass init: %.0fx — %s\n", a, (a >= 100 ? "met" : "MISSED")
  printf "- remove-member >= 30x faster than pass init: %.0fx — %s\n", r, (r >= 30 ? "met" : "MISSED")
  printf "- add-member within 1.5x of the floor: %.2fx — %s\n", fa, (fa <= 1.5 ? "met" : "MISSED")
  printf "- remove-member within 1.5x of the floor: %.2fx — %s\n", fr, (fr <= 1.5 ? "met" : "MISSED")
  if (au > 0) printf "- audit >= 200x faster than the gpg loop: %.0fx — %s\n", au, (au >= 200 ? "met" : "MISSED")
  if ((k in gl) && gl[k] > 0) { ag = v["audit", k] / gl[k]; printf "- audit within 1.5x of git log --raw --no-renames on the same history: %.2fx — %s\n", ag, (ag <= 1.5 ? "met" : "MISSED") }
  if (mr > 0) printf "- peak RSS < 64 MiB at N = 10000: %.1f MiB — %s\n", mr / 1024, (mr < 65536 ? "met" : "MISSED")
  else print "- peak RSS at N = 10000: not measured (--quick)"
}
AWK
} >"$work/report.md"

cat "$work/report.md"
say "report: $work/report.md; raw figures: $results; logs: $work/logs"
[ "$keep" = 1 ] && say "kept: stores in $work/base, GnuPG home in $GNUPGHOME"
exit 0
