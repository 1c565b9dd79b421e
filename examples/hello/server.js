'use strict'
// A plain HTTP server (core modules only): answers every request with who served it
// and who asked. Knows nothing of Ferry.
const http = require('node:http')

const port = Number(process.env.PORT || 8080)
const name = process.env.HOSTNAME || 'hello'

http.createServer((req, res) => {
  res.setHeader('content-type', 'text/plain')
  res.end(`hello from ${name} to ${req.socket.remoteAddress}\n`)
}).listen(port, '::', () => {
  console.log(`${name} listening on [::]:${port}`)
})
