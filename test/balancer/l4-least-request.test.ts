import { once } from 'node:events'
import type { Socket } from 'node:net'
import t from 'tap'
import type { Endpoint } from '../../src/discovery/service-index'
import { RouteTable } from '../../src/proxy'
import { parseClusterList } from '../../src/discovery/cluster-list'
import { listText, namespaceObj, podObj, serviceObj } from '../discovery/fixture'
import { listen, podNamed, startOutbound, type Teardown } from '../proxy/harness'
import { dial, drain } from '../helpers/net'
import { waitFor } from '../helpers/wait'

// least_request for an L4 service through the real outbound proxy on loopback: a
// connection held open on one endpoint sends the next connections to the other, and the
// balancer hears of each closed connection from the proxy's route stage.

/** Records every release it passes on, so the test can wait for the proxy to have seen a close. */
class ObservedRouteTable extends RouteTable {
  released = 0
  override release (serviceKey: string, endpoint: Endpoint): void {
    this.released++
    super.release(serviceKey, endpoint)
  }
}

async function namedServer (t: Teardown, host: string, name: string): Promise<number> {
  const { port } = await listen(t, host, (s: Socket) => {
    s.write(`${name}\n`)
    s.on('data', () => {})
    s.on('end', () => s.end())
    s.on('error', () => {})
  })
  return port
}

t.test('least_request (L4): new connections go to the endpoint with fewer open; a closed connection is released', async (t) => {
  const portA = await namedServer(t, '127.0.0.2', 'server-a')
  const portB = await namedServer(t, '127.0.0.3', 'server-b')
  const routes = new ObservedRouteTable()
  routes.update(parseClusterList(listText([
    namespaceObj('app', { 'ferry.dev/mesh': 'enabled' }),
    podObj({ name: 'client', ips: ['10.244.0.5'], labels: { app: 'client' } }),
    podObj({ name: 'server-a', ips: ['127.0.0.2'], labels: { app: 'server' }, ports: [{ name: 'tcp', containerPort: portA }] }),
    podObj({ name: 'server-b', ips: ['127.0.0.3'], labels: { app: 'server' }, ports: [{ name: 'tcp', containerPort: portB }] }),
    serviceObj({ name: 'server', clusterIPs: ['10.96.0.10'], selector: { app: 'server' }, ports: [{ port: 9000, targetPort: 'tcp' }] })
  ]), 'test', 1))
  const key = routes.index.lookup('10.96.0.10', 9000)!.key
  routes.setPolicyFor((k) => k === key ? 'least_request' : null)
  const proxy = await startOutbound(t, { routes, pod: podNamed(routes, 'client'), lookup: () => ({ address: '10.96.0.10', port: 9000 }) })

  const firstLine = async (s: Socket): Promise<string> => {
    const [chunk] = await once(s, 'data') as [Buffer]
    return chunk.toString().trim()
  }
  const short = async (): Promise<string> => {
    const s = await dial(proxy.port)
    s.end('hi')
    return (await drain(s)).data.toString().trim()
  }

  const held = await dial(proxy.port)
  t.teardown(() => held.destroy())
  const heldOn = await firstLine(held)
  const other = heldOn === 'server-a' ? 'server-b' : 'server-a'
  for (let i = 1; i <= 4; i++) {
    t.equal(await short(), other, `connection ${i}: the endpoint with no connection open`)
    await waitFor(() => routes.released === i, { what: `release ${i}` })
  }
  held.end()
  await drain(held)
  await waitFor(() => routes.released === 5, { what: 'the held connection released' })
  const both = [await short()]
  await waitFor(() => routes.released === 6, { what: 'release 6' })
  both.push(await short())
  t.same(both.sort(), ['server-a', 'server-b'], 'both idle again: one each, in turn')
})
