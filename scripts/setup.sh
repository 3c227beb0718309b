#!/usr/bin/env bash
# Installs the system packages vault's build and tests need on a fresh Debian machine, only when
# missing: libclang (bindgen, for sequoia's openssl backend), libssl-dev, pkg-config, capnproto,
# GnuPG, git,
# Debian's `pass` (the interop tests run the real program), openssh-server (an sshd on
# 127.0.0.1 for the ssh remote test), and Xvfb with xclip (the clipboard test).
set -euo pipefail

need=()
ldconfig -p 2>/dev/null | grep -qE 'libclang(-[0-9.]+)?\.so' || need+=(libclang-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
command -v pkg-config >/dev/null || need+=(pkg-config)
command -v capnp >/dev/null || need+=(capnproto) # sequoia-gpg-agent (sequoia-ipc) runs capnp at build time
command -v gpg >/dev/null || need+=(gnupg)
command -v gpg-agent >/dev/null || need+=(gpg-agent)
command -v git >/dev/null || need+=(git)
command -v pass >/dev/null || need+=(pass)
command -v tree >/dev/null || need+=(tree) # pass ls uses it
[ -x /usr/sbin/sshd ] || need+=(openssh-server) # tests/ssh.rs: vault sync over a real ssh remote
command -v Xvfb >/dev/null || need+=(xvfb)     # tests/clip.rs: a real X server for --clip
command -v xclip >/dev/null || need+=(xclip)   # the clipboard tool pass uses under X11

if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
