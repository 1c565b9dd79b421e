'use strict'
// The soak's bulk peer (a pod of src/lab/soak/fixture.ts): POST /echo streams the
// request body back as it arrives, so one request carries the bulk both ways; GET /
// answers "ok". Listens on [::]:$PORT. Plain Node, like every lab pod's program: the pod
// runs it from the source tree.
const http = require('node:http')

const port = Number(process.env.PORT || 8080)
http.createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/echo') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    req.pipe(res)
    return
  }
  res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/plain' }).end(req.url === '/' ? 'ok\n' : 'no such path\n')
}).listen(port, '::', () => { console.log(`soak bulk peer listening on [::]:${port}`) })
