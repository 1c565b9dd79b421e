import { createServer, request } from 'node:http'
import { labAgentEndpoint } from '../../src/lab/agent-admin'

// A lab agent's admin port made reachable from the host's loopback, for programs the test
// starts there (a Prometheus scraping the agents): the lab's agents listen inside their
// node's network namespace (src/lab/agent-admin.ts), so every request to the relay's
// loopback port is sent over a fresh connection made inside the node's namespace, and
// the answer passed back unchanged.

export interface AgentRelay {
  /** "127.0.0.1:port" */
  readonly address: string
  close (): Promise<void>
}

export async function relayAgentAdmin (lab: string, node: string): Promise<AgentRelay> {
  const endpoint = labAgentEndpoint(lab, node)
  const server = createServer((req, res) => {
    const upstream = request({
      createConnection: () => endpoint.connect(5000),
      method: req.method,
      path: req.url,
      headers: { ...req.headers, host: `${endpoint.host}:${endpoint.port}` }
    }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      answer.pipe(res)
    })
    upstream.on('error', (err) => { res.writeHead(502).end(String(err)) })
    req.pipe(upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    address: `127.0.0.1:${(server.address() as { port: number }).port}`,
    close: async () => {
      await new Promise((resolve) => server.close(resolve))
      endpoint.close()
    }
  }
}
