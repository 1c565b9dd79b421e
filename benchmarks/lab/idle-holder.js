'use strict'
// Holds many idle keep-alive connections open, for the idle-connection benchmark:
//   node idle-holder.js URL COUNT HOLD_SECONDS READY_FILE
// Opens COUNT connections (64 at a time), sends one GET on each and waits for its
// answer, writes READY_FILE ({"open": n, "failed": m}), keeps every connection open
// and silent for HOLD_SECONDS, then closes them and exits. Core modules only.
const http = require('node:http')
const { writeFileSync } = require('node:fs')

const [url, countText, holdText, readyFile] = process.argv.slice(2)
const count = Math.min(Number(countText), 20000)
const holdMs = Math.min(Number(holdText), 120) * 1000
const agents = []
let failed = 0

function one () {
  return new Promise((resolve) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const req = http.get(url, { agent, timeout: 10000 }, (res) => {
      res.resume()
      res.on('end', () => { agents.push(agent); resolve() })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => { failed++; agent.destroy(); resolve() })
  })
}

async function main () {
  let started = 0
  const workers = Array.from({ length: 64 }, async () => {
    while (started < count) { started++; await one() }
  })
  await Promise.all(workers)
  writeFileSync(readyFile, JSON.stringify({ open: agents.length, failed }))
  setTimeout(() => { for (const a of agents) a.destroy(); process.exit(0) }, holdMs)
}
main()
