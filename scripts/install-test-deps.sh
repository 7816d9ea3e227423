#!/usr/bin/env bash
# Installs what the tests need beyond Rust on a Debian machine (quick
# no-ops when everything is present): OpenSSH's server for the git push
# tests, HAProxy for the rolling-restart test, Chromium and Node for the
# browser tests. Needs root or sudo only when something is missing.
set -euo pipefail
missing=()
test -x /usr/sbin/sshd || missing+=(openssh-server)
command -v haproxy >/dev/null || test -x /usr/sbin/haproxy || missing+=(haproxy)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v npm >/dev/null || missing+=(nodejs npm)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing what the tests need: ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || {
        echo "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root" >&2
        exit 1
    }
    sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
