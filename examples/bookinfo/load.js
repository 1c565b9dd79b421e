'use strict'
// Drives the product page and sums up who answered: N requests (default 100) to URL
// (default http://productpage:9080/productpage), C at a time (default 4), and one JSON
// line: the page's statuses, which reviews version served each page (or the reviews
// error it showed), and the latency's median and 99th percentile.
//   node load.js --requests 200 --concurrency 4 [--url URL]
const { getJSON } = require('./http-json')

const arg = (name, def) => { const i = process.argv.indexOf(`--${name}`); return i >= 0 ? process.argv[i + 1] : def }
const URL_ = arg('url', 'http://productpage:9080/productpage')
const N = Number(arg('requests', 100))
const C = Number(arg('concurrency', 4))

async function main () {
  const statuses = {}
  const reviews = {}
  const ms = []
  let next = 0
  const worker = async () => {
    while (next < N) {
      next++
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
