#!/usr/bin/env node
'use strict'
// Thin launcher: the CLI is compiled TypeScript under dist/.
let main
try {
  main = require('../dist/src/cli/main.js').main
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND') {
    process.stderr.write('ferry: not built yet — run `npm ci && npm run build` in the repository first\n')
    process.exit(2)
  }
  throw err
}
main(process.argv.slice(2)).then((code) => { process.exitCode = code })
