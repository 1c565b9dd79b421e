#!/usr/bin/env bash
# Installs and builds what Ferry needs on a Debian machine, only what is missing.
# Idempotent: the quick start, the test command and CI all start here.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
  echo "ferry: setup needs root (eBPF, network namespaces, cgroups); run it with sudo" >&2
  exit 1
fi

# Debian packages: the eBPF toolchain (clang, libbpf), jansson for the static ferry-cni
# plugin (native/cni links its libjansson.a), iproute2 for the lab, and the
# unmodified programs the lab's pods run (curl, nginx, redis-server), and the benchmark
# suite's load generator and peers (h2load from nghttp2-client, haproxy, nginx's stream
# module, openssl), and the Prometheus server the metrics tests scrape with.
PKGS=(clang llvm libbpf-dev libelf-dev zlib1g-dev libjansson-dev linux-libc-dev pkg-config make g++ python3
      iproute2 util-linux procps bpftool curl nginx-light redis-server tcpdump
      nghttp2-client haproxy libnginx-mod-stream openssl prometheus)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "ferry: installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm dependencies, exactly as locked.
stamp=node_modules/.ferry-lock-stamp
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "ferry: npm ci"
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi

# eBPF objects, the native addon and the TypeScript build.
echo "ferry: building (bpf, native addon, CNI plugin, TypeScript)"
npm run --silent build

# bpffs: the agent mounts it itself when missing; mounting here too keeps tools like
# bpftool useful for people poking around.
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
