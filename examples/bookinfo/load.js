'use strict'
// Drives the product page and sums up who answered: N requests (default 100) to URL
// (default http://productpage:9080/productpage), C at a time (default 4), at most R per
// second when --rate is given, and one JSON line: the page's statuses, which reviews
// version served each page (or the reviews error it showed), and the latency's median
// and 99th percentile.
//   node load.js --requests 200 --concurrency 4 [--rate 20] [--url URL]
const { getJSON } = require('./http-json')

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] : def }
const URL_ = arg('url', 'http://productpage:9080/productpage')
const N = Number(arg('requests', 100))
const C = Number(arg('concurrency', 4))
const RATE = Number(arg('rate', 0))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main () {
  const statuses = {}
  const reviews = {}
  const ms = []
  let next = 0
  const start = performance.now()
  const worker = async () => {
    while (next < N) {
      const k = next++
      // With a rate, request k starts no earlier than k / RATE seconds after the first.
      if (RATE > 0) await sleep(start + (k * 1000) / RATE - performance.now())
      const t0 = performance.now()
      const r = await getJSON(URL_)
      ms.push(performance.now() - t0)
      statuses[r.status] = (statuses[r.status] ?? 0) + 1
      const rv = r.body?.reviews
      const key = rv === undefined ? 'none' : rv.error !== undefined ? `error ${rv.error}` : `reviews-${rv.version}`
      reviews[key] = (reviews[key] ?? 0) + 1
    }
  }
  await Promise.all(Array.from({ length: C }, worker))
  ms.sort((a, b) => a - b)
  const q = (p) => Math.round(ms[Math.min(ms.length - 1, Math.floor(p * ms.length))])
  process.stdout.write(JSON.stringify({ requests: N, statuses, reviews, p50_ms: q(0.5), p99_ms: q(0.99) }) + '\n')
}

main()
