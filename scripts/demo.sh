#!/usr/bin/env bash
# The demo: builds a realistic pass store for the demo team (keys/, public test material) with the
# real `pass`, then lets vault adopt it, onboard eduardo and offboard nick, and shows that pass and
# GnuPG still read the result. Everything happens in a fresh temporary folder with its own GnuPG
# home; your ~/.gnupg and ~/.password-store are not touched. The folder is kept so you can look.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

section() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }

section "Setup: system packages and the release build"
scripts/setup.sh
cargo build --release --quiet
vault_bin="$repo/target/release/vault"

# vault and pass, as the reader would type them: print the command, then run it.
vault() { show "vault $*"; "$vault_bin" "$@"; }
run() { show "$*"; "$@"; }

demo="$(mktemp -d "${TMPDIR:-/tmp}/vault-demo.XXXXXX")"
export GNUPGHOME="$demo/gnupg"
export PASSWORD_STORE_DIR="$demo/store"
store="$PASSWORD_STORE_DIR"
mkdir -m 700 "$GNUPGHOME"
# The demo keys are imported, not certified: let gpg (and so pass) encrypt to them without asking.
echo "trust-model always" >"$GNUPGHOME/gpg.conf"
trap 'gpgconf --kill gpg-agent >/dev/null 2>&1 || true' EXIT

# Authors of the demo commits (pass's and vault's); no change to your git config.
export GIT_AUTHOR_NAME="Akshay Raman" GIT_AUTHOR_EMAIL="akshay@coop.example"
export GIT_COMMITTER_NAME="Akshay Raman" GIT_COMMITTER_EMAIL="akshay@coop.example"
# Quiets git's "default branch name" hint when pass runs `git init`.
export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=init.defaultBranch GIT_CONFIG_VALUE_0=main

echo "demo folder: $demo (kept after the demo)"
echo "  store:     $store"
echo "  GnuPG:     $GNUPGHOME"

# The primary key fingerprint of keys/NAME.asc (awk reads all of gpg's output: no SIGPIPE).
fpr() {
  local f
  f=$(gpg --show-keys --with-colons "keys/$1.asc" 2>/dev/null | awk -F: '/^fpr/ && !done { print $10; done = 1 }')
  [ -n "$f" ] || { echo "demo: no fingerprint in keys/$1.asc" >&2; return 1; }
  echo "$f"
}
nick=$(fpr nick)
eduardo=$(fpr eduardo)
akshay=$(fpr akshay)
noah=$(fpr noah)
will=$(fpr will)

# A random demo password (reads a file, so no SIGPIPE under pipefail).
password() { head -c 18 /dev/urandom | base64; }

section "a. GnuPG: import the team's public keys and akshay's secret key (akshay operates the demo)"
run gpg --batch --quiet --import keys/nick.asc keys/akshay.asc keys/noah.asc keys/will.asc \
  keys/akshay.secret.asc
gpg --list-keys --keyid-format none | grep -E '^uid' || true

section "b. pass: the team's store, made with the real pass"
run pass init "$akshay" "$nick" "$noah" "$will"
run pass git init
# Each entry: first line the password, then free text (pass convention).
insert() {
  local name="$1"
  shift
  show "printf ... | pass insert -m $name"
  printf '%s\n' "$@" | pass insert -m "$name" >/dev/null
}
insert servers/web1/root "$(password)" "user: root" "host: web1.coop.example" \
  "note: SSH as root only from the office VPN"
insert hosting/hetzner "$(password)" "login: tech@coop.example" "url: https://accounts.hetzner.com/" \
  "customer number: K0123456789"
insert dns/registrar "$(password)" "login: coop-tech" "url: https://registrar.example/" \
  "domains: coop.example, coop-shop.example"
insert mail/aliases/board "$(password)" "alias: board@coop.example" \
  "forwards to: the three board members (see the wiki); change the list in the mail admin panel"
# finance/ has its own, smaller readership.
run pass init -p finance "$akshay" "$nick"
insert finance/bank "$(password)" "login: coop-finance" "url: https://bank.example/business" \
  "IBAN: DE00 0000 0000 0000 0000 00 (demo)"
run pass ls
show "git -C $store log --format='%h %s'"
git -C "$store" log --format='%h %s'

section "c1. vault init: adopt the store (names from the e-mail addresses, one commit)"
# --identity: akshay signs the adoption commit.
vault --store "$store" --identity keys/akshay.secret.asc init

section "c1b. Share the store: a git remote (here a bare repository), and will's clone"
remote="$demo/remote.git"
run git clone --quiet --bare "$store" "$remote"
run git -C "$store" remote add origin "$remote"
run git -C "$store" fetch --quiet origin
run git -C "$store" branch --quiet --set-upstream-to=origin/main
# will uses plain pass and git; his clone is made now and not pulled again before he writes.
will_clone="$demo/will-clone"
run git clone --quiet "$remote" "$will_clone"

section "c1c. vault readme: the store explains itself on the git host's front page (kept current by every vault command)"
vault --store "$store" --identity keys/akshay.secret.asc readme
show "head -n 12 $store/README.md"
head -n 12 "$store/README.md"

section "c2. vault add-member: onboard eduardo to the whole store (and push: the store has a remote)"
vault --store "$store" --identity keys/akshay.secret.asc add-member keys/eduardo.asc \
  --fingerprint "$eduardo"

section "c2b. vault grant: noah joins the finance working group (finance/ gains a reader, data kept)"
vault --store "$store" --identity keys/akshay.secret.asc grant noah --folder finance

section "c3. vault remove-member: offboard nick, push (then rotate what it lists)"
vault --store "$store" --identity keys/akshay.secret.asc --yes remove-member nick

section "c3b. Meanwhile will, on plain pass with his old clone, adds a credential and pushes"
# His .gpg-id still lists nick and not eduardo: pass encrypts to those.
will_env=(env PASSWORD_STORE_DIR="$will_clone" GIT_AUTHOR_NAME="Will Okafor"
  GIT_AUTHOR_EMAIL="will@coop.example" GIT_COMMITTER_NAME="Will Okafor"
  GIT_COMMITTER_EMAIL="will@coop.example")
show "printf ... | pass insert -m wifi/office   (in will's clone)"
printf '%s\n' "$(password)" "ssid: coop-office" | "${will_env[@]}" pass insert -m wifi/office >/dev/null
run "${will_env[@]}" git -C "$will_clone" pull --quiet --rebase
run "${will_env[@]}" git -C "$will_clone" push --quiet

section "c3c. vault sync: check what came in, fast-forward, repair (eduardo in, nick out), push"
vault --store "$store" --identity keys/akshay.secret.asc --yes sync

section "c4. vault members"
vault --store "$store" members

section "c5. vault audit: who can read what (from the ciphertexts), and what to rotate"
# Exit code 3 means "needs attention": here, the entries nick could read must be rotated.
vault --store "$store" audit || [ $? -eq 3 ]

section "c5b. vault rotate: new passwords for what nick could read, every other line kept (one commit)"
# In real life, run it on a terminal: it shows each entry's login and url, gives a new password,
# and records it once you changed it at the service. --yes rotates all with generated ones.
vault --store "$store" --identity keys/akshay.secret.asc --yes rotate --member nick
vault --store "$store" --identity keys/akshay.secret.asc show servers/web1/root --line 2
vault --store "$store" ls

section "c6. vault verify: every membership change was signed by a trusted member"
vault --store "$store" verify

section "c7. git: the last commits (vault's are signed)"
show "git -C $store log --stat --format='%h %s' -5"
git -C "$store" log --stat --format='%h %s' -5

section "d. pass still works: pass show as akshay (GnuPG decrypts)"
run pass show servers/web1/root

section "d. Who can read each entry now (PKESK key ids in each file, as GnuPG lists them)"
# Map each demo key's encryption subkey id to the member's name.
declare -A member_of
for name in nick eduardo akshay noah will; do
  while read -r keyid; do
    member_of[$keyid]=$name
  done < <(gpg --show-keys --with-colons "keys/$name.asc" | awk -F: '$1 == "sub" && $12 ~ /e/ { print $5 }')
done
show "gpg --batch --list-only --status-fd 1 --decrypt ENTRY.gpg  (ENC_TO lines)"
while read -r file; do
  entry="${file#"$store"/}"
  entry="${entry%.gpg}"
  readers=()
  while read -r keyid; do
    readers+=("${member_of[$keyid]:-unknown key $keyid}")
  done < <(gpg --batch --list-only --status-fd 1 --decrypt "$file" 2>/dev/null |
    awk '$2 == "ENC_TO" { print $3 }' || true)
  printf '  %-20s %s\n' "$entry" "${readers[*]}"
done < <(find "$store" -name '*.gpg' -type f | sort)
printf '  (%s: %s)\n' "folder .gpg-id files" "$(cd "$store" && find . -name .gpg-id | sort | tr '\n' ' ')"

section "e. The README after the week: members, former members, what to rotate (names only)"
show "sed -n '/^## Members/,\$p' $store/README.md"
sed -n '/^## Members/,$p' "$store/README.md"

section "f. pass after vault: vault import-keys, then pass init with the same ids"
# Until now this GnuPG home trusted every key (trust-model always, the old workaround). From here
# on GnuPG's own trust decides, and vault import-keys sets it to exactly the vouched members:
# imported from .public-keys/ and certified locally with akshay's key. akshay's own key was
# imported from a file here, so he first says it is his (GnuPG does this for keys it generates).
sed -i '/^trust-model always$/d' "$GNUPGHOME/gpg.conf"
show "echo $akshay:6: | gpg --import-ownertrust"
echo "$akshay:6:" | gpg --batch --quiet --import-ownertrust
vault --store "$store" --yes import-keys
# vault encrypts to exactly the keys pass checks, so pass finds nothing to re-encrypt.
head_before=$(git -C "$store" rev-parse HEAD)
mapfile -t root_ids < <(grep -v '^#' "$store/.gpg-id")
mapfile -t finance_ids < <(grep -v '^#' "$store/finance/.gpg-id")
run pass init "${root_ids[@]}"
run pass init -p finance "${finance_ids[@]}"
if [ "$(git -C "$store" rev-parse HEAD)" = "$head_before" ] && [ -z "$(git -C "$store" status --porcelain)" ]; then
  echo "pass re-encrypted nothing: no new commit, no change in the work tree."
else
  echo "NOTE: pass changed the store:"
  git -C "$store" status --short
  git -C "$store" log --format='%h %s' "$head_before"..HEAD
fi

section "Done"
echo "The demo store is in $store; to look around with pass and gpg:"
echo "  export GNUPGHOME=$GNUPGHOME PASSWORD_STORE_DIR=$store"
echo "  pass ls; git -C $store log --stat"
echo "(gpg-agent of that GnuPG home is stopped now; gpg starts it again when needed.)"
