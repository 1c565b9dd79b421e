import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, get } from 'node:http'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from '../../src/agent/agent'
import { parseAgentOptions } from '../../src/agent/options'
import { listText, namespaceObj, nodeObj, podObj, serviceObj } from '../discovery/fixture'
import { captureLog } from '../proxy/harness'
import { loopbackPlatform, OPEN_DEBUG, RecordingCapture } from './loopback-platform'
import { waitFor } from '../helpers/wait'

// An HTTP limit given on the agent's command line is the one its L7 engine enforces: a
// request through an L7-engaged service with more header fields than --http-max-headers
// is refused with 431, one within it is served.

/** Sends `raw` on a new connection; resolves with everything read until the proxy closes it (or the deadline). */
function exchange (port: number, raw: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1')
    let got = ''
    const timer = setTimeout(() => { s.destroy() }, 3000)
    s.on('data', (d) => { got += String(d) })
    s.on('error', () => {})
    s.on('close', () => { clearTimeout(timer); resolve(got) })
    s.write(raw)
  })
}

t.test('--http-max-headers reaches the L7 engine', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-agent-limits-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const app = createServer((req, res) => { req.resume(); res.setHeader('connection', 'close'); res.end('served') })
  await new Promise<void>((resolve) => app.listen(0, '127.0.0.2', resolve))
  t.teardown(() => { app.closeAllConnections(); app.close() })
  const appPort = (app.address() as { port: number }).port
  const file = join(dir, 'cluster.json')
  for (const p of ['client', 'server']) writeFileSync(join(dir, p), '')
  const lab = (pod: string): Record<string, string> => ({ 'lab.ferry.dev/netns': join(dir, pod), 'lab.ferry.dev/cgroup': `lab/${pod}` })
  writeFileSync(file, listText([
    nodeObj('n1'),
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled', 'ferry.dev/l7': 'enabled' }),
    podObj({ name: 'client', uid: 'u-client', ips: ['10.244.0.5'], annotations: lab('client') }),
    podObj({ name: 'server', uid: 'u-server', ips: ['127.0.0.2'], labels: { app: 'server' }, annotations: lab('server'), ports: [{ name: 'http', containerPort: appPort }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 80, targetPort: 'http', appProtocol: 'http' }] })
  ]))
  const capture = new RecordingCapture()
  const options = parseAgentOptions(['--node', 'n1', '--cluster-file', file, '--pin-root', '/sys/fs/bpf/ferry-test', '--admin-port', '0', '--ready-port', '0', '--workers', '1', '--http-max-headers', '5'])
  const agent = await Agent.start(options, { platform: loopbackPlatform(capture), log: captureLog().log, adminAuth: OPEN_DEBUG })
  t.teardown(async () => { await agent.close() })
  await waitFor(() => capture.calls.includes('enroll u-client') && capture.calls.includes('enroll u-server'), { timeoutMs: 3000, what: 'pods enrolled' })
  const pods = await new Promise<any>((resolve, reject) => {
    get({ host: '127.0.0.1', port: agent.admin.adminPort, path: '/debug/pods' }, (res) => {
      let text = ''
      res.on('data', (c) => { text += String(c) })
      res.on('end', () => { resolve(JSON.parse(text)) })
    }).on('error', reject)
  })
  const outbound = pods.pods.find((p: any) => p.name === 'client').listeners[0].port
  capture.originalDestination = { address: '10.96.0.10', port: 80 }

  let few = 'GET / HTTP/1.1\r\nhost: server.app\r\n'
  for (let i = 0; i < 3; i++) few += `x-h${i}: v\r\n`
  t.match(await exchange(outbound, few + 'connection: close\r\n\r\n'), /^HTTP\/1.1 200 [^]*served$/, 'within the limit: served')
  let many = 'GET / HTTP/1.1\r\nhost: server.app\r\n'
  for (let i = 0; i < 10; i++) many += `x-h${i}: v\r\n`
  t.match(await exchange(outbound, many + '\r\n'), /^HTTP\/1.1 431 /, 'over --http-max-headers 5 (Envoy\'s default is 100): 431')
})
