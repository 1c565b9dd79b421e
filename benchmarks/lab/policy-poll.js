'use strict'
// Polls a URL with a new connection per attempt until the answer changes, for the
// policy benchmark:  node policy-poll.js URL until=denied|allowed TIMEOUT_SECONDS READY_FILE
// Writes READY_FILE once the first attempt has seen the opposite state (so the runner
// changes the policy only after polling has started), then prints one JSON line
// {"at": epoch ms of the first attempt that saw the awaited state, "attempts": n}.
// Bounded: at most TIMEOUT_SECONDS (≤ 60), 2 ms between attempts.
const http = require('node:http')
const { writeFileSync } = require('node:fs')

const [url, until, timeoutText, readyFile] = process.argv.slice(2)
const deadline = Date.now() + Math.min(Number(timeoutText), 60) * 1000

function attempt () {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode === 200 ? 'allowed' : 'denied'))
      res.on('error', () => resolve('denied'))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve('denied'))
  })
}

async function main () {
  let attempts = 0
  let ready = false
  while (Date.now() < deadline) {
    const started = Date.now()
    const state = await attempt()
    attempts++
    if (state === until) {
      if (ready) { console.log(JSON.stringify({ at: started, attempts })); return }
    } else if (!ready) {
      writeFileSync(readyFile, String(started))
      ready = true
    }
    await new Promise((resolve) => setTimeout(resolve, 2))
  }
  console.log(JSON.stringify({ at: null, attempts }))
  process.exitCode = 1
}
main()
