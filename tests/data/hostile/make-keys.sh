#!/bin/sh
# Makes the hostile key files for tests/hostile.rs with GnuPG (2.2 or later), next to this script.
# tests/hostile.rs runs a copy of it in Cargo's test temp folder; nothing it makes is committed.
# TEST MATERIAL: the secret keys have no passphrase; never use them for anything real.
set -eu
out=$(cd "$(dirname "$0")" && pwd)
GNUPGHOME=$(mktemp -d /tmp/vault-hostile-keys.XXXXXX)
export GNUPGHOME LC_ALL=C
trap 'gpgconf --kill gpg-agent; rm -rf "$GNUPGHOME"' EXIT
echo "trust-model always" > "$GNUPGHOME/gpg.conf"

g() { gpg --batch --quiet --pinentry-mode loopback --passphrase '' "$@"; }
fpr() { gpg --with-colons --list-keys "$1" | awk -F: '/^fpr/ { print $10; exit }'; }
pub() { g --armor --export "$(fpr "$1")" > "$out/$2"; }

# key NAME EMAIL PRIMARY SUBKEY [EXPIRY] [extra gpg options...]: a key, its fpr on stdout.
key() {
    name=$1 email=$2 primary=$3 sub=$4 expiry=$5
    shift 5
    g "$@" --quick-gen-key "$name <$email>" "$primary" sign "$expiry"
    f=$(fpr "$email")
    if [ "$sub" != none ]; then g "$@" --quick-add-key "$f" "$sub" encr "$expiry"; fi
}

# Members of the test store: alice (the operator: public and secret) and bob.
key Alice alice@coop.example ed25519 cv25519 never
pub alice@coop.example alice.asc
g --armor --export-secret-keys "$(fpr alice@coop.example)" > "$out/alice.secret.asc"
key Bob bob@coop.example ed25519 cv25519 never
pub bob@coop.example bob.asc

# carol and dave: good keys, for a secret key file, two certificates in one file, a wrong
# --fingerprint.
key Carol carol@coop.example ed25519 cv25519 never
pub carol@coop.example carol.asc
g --armor --export-secret-keys "$(fpr carol@coop.example)" > "$out/carol.secret.asc"
key Dave dave@coop.example ed25519 cv25519 never
pub dave@coop.example dave.asc
cat "$out/carol.asc" "$out/dave.asc" > "$out/two-certs.asc"

# A second key with alice's e-mail address (a .gpg-id line "alice@coop.example" is ambiguous).
g --quick-gen-key "Alice Twin <alice@coop.example>" ed25519 sign never
twin=$(gpg --with-colons --list-keys alice@coop.example | awk -F: '/^fpr/ { print $10 }' | sed -n 3p)
g --quick-add-key "$twin" cv25519 encr never
g --armor --export "$twin" > "$out/alice-twin.asc"

# No encryption subkey at all.
key Signonly signonly@coop.example ed25519 none never
pub signonly@coop.example sign-only.asc

# Expired: made with a clock in 2020, valid for a year.
key Expired expired@coop.example ed25519 cv25519 1y --faked-system-time 20200101T000000!
pub expired@coop.example expired.asc

# Primary valid, encryption subkey expired (2020 + 1 year).
key Subexpired subexpired@coop.example ed25519 none never --faked-system-time 20200101T000000!
g --faked-system-time 20200101T000000! --quick-add-key "$(fpr subexpired@coop.example)" cv25519 encr 1y
pub subexpired@coop.example expired-subkey.asc

# Revoked: import the revocation certificate GnuPG stored for it.
key Revoked revoked@coop.example ed25519 cv25519 never
f=$(fpr revoked@coop.example)
sed 's/^:-----BEGIN/-----BEGIN/' "$GNUPGHOME/openpgp-revocs.d/$f.rev" > "$GNUPGHOME/rev.asc"
g --import "$GNUPGHOME/rev.asc"
pub revoked@coop.example revoked.asc

# Encryption subkey revoked (the primary key is fine).
key Subrevoked subrevoked@coop.example ed25519 cv25519 never
printf 'key 1\nrevkey\ny\n0\n\ny\nsave\n' |
    gpg --batch --pinentry-mode loopback --passphrase '' --command-fd 0 --status-fd 2 \
        --edit-key "$(fpr subrevoked@coop.example)" 2>/dev/null
pub subrevoked@coop.example revoked-subkey.asc

# RSA-1024.
key Rsa1024 rsa1024@coop.example rsa1024 rsa1024 never
pub rsa1024@coop.example rsa1024.asc

# SHA-1 self-signatures only (made now, so sequoia's standard policy rejects them).
key Shaone sha1@coop.example rsa2048 rsa2048 never --cert-digest-algo SHA1 --digest-algo SHA1
pub sha1@coop.example sha1-binding.asc

# Secret key material in a .public-keys/ file: an unprotected secret key, binary.
g --export-secret-keys "$(fpr dave@coop.example)" > "$out/dave.secret.gpg"

echo "wrote the keys to $out"
