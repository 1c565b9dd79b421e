'use strict'
// Answers every request with its pod's name; keeps idle keep-alive connections for
// 10 minutes, so a client's connection ends only when something breaks it.
const http = require('node:http')

const name = process.env.HOSTNAME || 'server'
const server = http.createServer((req, res) => {
  req.resume()
  res.setHeader('content-type', 'text/plain')
  res.end(`${name}\n`)
})
server.keepAliveTimeout = 600_000
server.headersTimeout = 601_000
server.requestTimeout = 0
server.listen(8080, '::', () => { console.log(`${name} listening on [::]:8080`) })
