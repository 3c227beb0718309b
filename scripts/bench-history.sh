#!/usr/bin/env bash
# A store with history, as pass makes it: N entries (default 100), then C commits (default
# 3000) that each rewrite one entry, one former member; then times `vault audit` and
# `vault add-member` for each vault binary given, on a fresh copy each, and git's own walk of
# the same history (`git log --raw --no-renames`). Private GnuPG home and temporary folders.
#
#   N=100 C=3000 scripts/bench-history.sh target/release/vault [OTHER_VAULT…]
set -euo pipefail
N=${N:-100}; C=${C:-3000}
W=$(mktemp -d /tmp/histbench.XXXX); echo "work: $W"
export GNUPGHOME=$W/g HOME=$W/home; mkdir -m700 $GNUPGHOME; mkdir -p $HOME
echo "trust-model always" > $GNUPGHOME/gpg.conf
export GIT_AUTHOR_NAME=T GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=T GIT_COMMITTER_EMAIL=t@x
LB="--batch --pinentry-mode loopback --passphrase="
for n in alice bob carol; do gpg $LB --quick-gen-key "$n <$n@x>" ed25519 sign never 2>/dev/null; F=$(gpg --with-colons -k $n@x | awk -F: '/^fpr/{print $10; exit}'); gpg $LB --quick-add-key $F cv25519 encr never 2>/dev/null; eval "$n=$F"; done
gpg --armor --export-secret-keys $alice > $W/alice.sec; gpg --armor --export $carol > $W/carol.asc
S=$W/store; export PASSWORD_STORE_DIR=$S
pass init $alice $bob >/dev/null; pass git init >/dev/null
mkdir -p $W/plain
for i in $(seq 1 $N); do echo "pw$i" > $W/plain/e$i; done
mkdir -p $S/e
gpg --batch -r $alice -r $bob --compress-algo none --encrypt-files $W/plain/e* 
mv $W/plain/*.gpg $S/e/
git -C $S add -A; git -C $S commit -qm "entries"
mkdir -p $W/var; for k in $(seq 1 40); do echo "v$k" > $W/var/v$k; done
gpg --batch -r $alice -r $bob --compress-algo none --encrypt-files $W/var/v*
blobs=(); for k in $(seq 1 40); do blobs+=($(git -C $S hash-object -w $W/var/v$k.gpg)); done
echo "making $C commits"
for c in $(seq 1 $C); do
  i=$(( c % N + 1 )); b=${blobs[$(( c % 40 ))]}
  git -C $S update-index --cacheinfo 100644,$b,e/e$i.gpg
  git -C $S commit -q -m "Edit password for e/e$i using vim."
done
git -C $S checkout -q -- . 
echo "history: $(git -C $S rev-list --count HEAD) commits"
V=${V1:-$1}
$V --store $S --identity $W/alice.sec --yes init >/dev/null
$V --store $S --identity $W/alice.sec --yes remove-member bob >/dev/null
tar -C $W -cf $W/store.tar store
for bin in "$@"; do
  rm -rf $S; tar -C $W -xf $W/store.tar
  t0=$(date +%s.%N); $bin --store $S audit >/dev/null || true; t1=$(date +%s.%N)
  t2=$(date +%s.%N); $bin --store $S --identity $W/alice.sec --yes add-member $W/carol.asc >/dev/null; t3=$(date +%s.%N)
  echo "$bin: audit $(echo "$t1-$t0"|bc) s, add-member $(echo "$t3-$t2"|bc) s"
done
t0=$(date +%s.%N); git -C $S log --raw --no-renames >/dev/null; t1=$(date +%s.%N); echo "git log --raw: $(echo "$t1-$t0"|bc) s"
