#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, bring up the shop lab (two
# simulated nodes, web → cart → payments → db) with Ferry, send a few orders, and show
# that every hop went through the nodes' Ferry proxies.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
LAB=${FERRY_DEMO_LAB:-shop}
ferry() { node bin/ferry.js "$@"; }

if ferry lab status "$LAB" >/dev/null 2>&1; then
  echo "ferry: lab '$LAB' is already up; reusing it (ferry lab down $LAB to start over)"
else
  echo "ferry: bringing up the shop lab '$LAB' (2 nodes, 5 shop pods and a dev client)…"
  ferry lab up --name "$LAB" examples/shop/shop.yaml examples/shop/dev.yaml
fi
ferry lab status "$LAB"

echo
echo "== Placing 3 orders from inside the web pod (curl → web → cart → payments → db)"
for i in 1 2 3; do
  ferry lab exec --lab "$LAB" -n shop web -- curl -sS --max-time 5 "http://web:8080/checkout?user=demo$i&amount=$((i * 10))"
  echo
done

echo
echo "== Ferry's access log: one line per connection, from both nodes' proxies (mTLS = crossed nodes in the tunnel)"
for node in node1 node2; do
  ferry lab logs --lab "$LAB" --node "$node" | node -e '
    const lines = require("fs").readFileSync(0, "utf8").split("\n").filter((l) => l.includes("\"msg\":\"access\""))
    for (const l of lines.slice(-8)) {
      const a = JSON.parse(l)
      const src = a.source ? `${a.source.namespace ?? "?"}/${a.source.pod ?? a.source.ip}` : "?"
      const dst = a.destination ? `${a.destination.namespace}/${a.destination.pod}` : a.endpoint
      console.log(`  ${process.argv[1]} ${a.direction.padEnd(8)} ${src.padEnd(16)} → ${String(a.original_destination).padEnd(22)} ${(a.destination_service ?? "").padEnd(14)} → ${String(dst).padEnd(16)} ${a.mtls ? "mTLS " : "local"} ${a.result} ${a.bytes_received}/${a.bytes_sent} B`)
    }' "$node"
done

echo
echo "== Prometheus metrics of node1's agent (connections opened, by source and destination)"
ferry lab exec --lab "$LAB" --node node1 -- curl -s http://127.0.0.1:15020/metrics | grep '^istio_tcp_connections_opened_total' | head -12

cat <<TXT

The lab is still up. Try:
  npx ferry lab exec --lab $LAB -n shop web -- curl -s 'http://web:8080/checkout?user=you&amount=1'
  npx ferry lab logs --lab $LAB --node node2
  npx ferry lab down $LAB
Deny the dev namespace access to the shop, live, and ask the agent why (examples/policies/README.md):
  npx ferry lab apply --lab $LAB examples/policies/deny-dev-to-shop.yaml
  npx ferry lab exec --lab $LAB -n dev client -- curl -sS http://web.shop:8080/
  npx ferry policy check --lab $LAB --from dev/client --to shop/web:8080
TXT
