#!/usr/bin/env bash
# The test suite: installs what is missing (scripts/setup.sh), then runs every test. The
# integration tests drive the real vault binary against the real gpg, gpg-agent, git and pass in
# temporary directories with private GNUPGHOMEs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked "$@"
