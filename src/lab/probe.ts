import { request } from 'node:http'
import { isIP, type Socket } from 'node:net'
import { connectInNetns, openNetns, type Netns } from '../native'

// Probes from inside a namespace, without entering it: the native addon makes the
// socket in the target namespace and hands it back as a net.Socket. The lab process is
// in no pod's cgroup, so its probes are never captured by the mesh; a probe to a pod's
// own IP from inside that pod arrives over lo, which the mesh's sk_lookup ignores.
//
// One Prober holds each namespace open while it is used; close() releases them all.

export interface HttpReply {
  readonly status: number
  readonly body: string
}

/** Replies larger than this are cut (readiness answers are a few hundred bytes). */
const MAX_BODY = 64 * 1024

export class Prober {
  private readonly open = new Map<string, Netns>()

  private netns (path: string): Netns {
    let ns = this.open.get(path)
    if (ns === undefined) {
      ns = openNetns(path)
      this.open.set(path, ns)
    }
    return ns
  }

  private connect (netnsPath: string, host: string, port: number, timeoutMs: number): Socket {
    const family = isIP(host) === 6 ? 6 : 4
    return connectInNetns(this.netns(netnsPath), { host, port, family, timeoutMs })
  }

  /** True when a TCP connection to host:port, made inside the namespace, is accepted. */
  async tcp (netnsPath: string, host: string, port: number, timeoutMs: number): Promise<boolean> {
    let socket: Socket
    try {
      socket = this.connect(netnsPath, host, port, timeoutMs)
    } catch {
      return false
    }
    return await new Promise((resolve) => {
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => { socket.destroy(); resolve(false) })
    })
  }

  /** GET http://host:port/path from inside the namespace; null when there is no answer in time. */
  async httpGet (netnsPath: string, host: string, port: number, path: string, timeoutMs: number): Promise<HttpReply | null> {
    return await new Promise((resolve) => {
      let done = false
      const finish = (r: HttpReply | null): void => { if (!done) { done = true; clearTimeout(timer); resolve(r) } }
      const req = request({
        host,
        port,
        path,
        method: 'GET',
        // No `agent`: with one, Node ignores createConnection (agent: false means a fresh Agent).
        headers: { connection: 'close' },
        createConnection: () => this.connect(netnsPath, host, port, timeoutMs)
      }, (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => { if (body.length < MAX_BODY) body += chunk })
        res.on('end', () => finish({ status: res.statusCode ?? 0, body }))
        res.on('error', () => finish(null))
      })
      const timer = setTimeout(() => { req.destroy(); finish(null) }, timeoutMs)
      req.on('error', () => finish(null))
      req.end()
    })
  }

  close (): void {
    for (const ns of this.open.values()) ns.close()
    this.open.clear()
  }
}
