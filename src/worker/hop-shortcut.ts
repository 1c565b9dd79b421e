import type { Socket } from 'node:net'
import { canonicalIP } from '../discovery/ip'
import type { SockKeyShape } from '../agent/platform'
import type { Connector, Splicer, SpliceHandle } from '../proxy'
import type { ProxyMetrics } from '../telemetry/metrics'
import type { DataPathCapture } from './data-path-capture'

// The kernel shortcuts of the plaintext hops between pods and the proxy
// (bpf/sk_msg.bpf.c), owned here: the proxy (src/proxy/) knows nothing of the hop, and
// asks only for the same-node splice, through its Splicer interface (src/proxy/splice.ts).
//
// Hop: the proxy's end of a hop joins ferry_socks, so its bytes pass between the pod's
// socket and ours without TCP. Two hops qualify, both inside one pod's netns over its lo:
// a connection accepted on the pod's outbound listener (its peer is the app's captured
// connect) and a connection the proxy makes to the pod's own address (plaintext inbound
// and tunnel delivery; its peer is the app's accepted socket). The pod's ends join in the
// kernel (bpf/sockops.bpf.c). Joining changes no byte of the stream (the eBPF side keeps
// order and bounds its queue), so a refusal only means the hop stays on TCP, and joining
// late is as safe as joining early: a socket joins when its connection delivers its
// second chunk (onceBusy), so a one-request connection never pays the setup.
//
// Splice: a same-node connection, once authorized and connected, passes bytes app to
// app. Neither of its hops joins (the splice counts each app's TCP bytes to know when
// nothing is in flight through the proxy): a socket the proxy splices is marked, and the
// mark is read when the hop would join. The proxy keeps relaying what still takes TCP,
// and FINs.
//
// Every attempt is counted in ferry_sockmap_shortcuts_total{kind: hop|splice, result}.

export interface ShortcutDeps {
  readonly capture: DataPathCapture
  readonly metrics: Pick<ProxyMetrics, 'shortcut'>
}

/** The shortcuts of one enrolled pod's sockets. */
export interface PodShortcuts {
  /** A socket accepted on the pod's outbound listener: joins its hop once busy, unless spliced. */
  accepted (socket: Socket): void
  /** `inner` (which makes sockets in the pod's netns), whose sockets to the pod's own address join their hop once busy, unless spliced. */
  connector (inner: Connector): Connector
  /** The proxy's splicer for connections from this pod (src/proxy/splice.ts). */
  readonly splicer: Splicer
}

/** Sockets the proxy spliced (either end): they never join a hop. Per thread, as the sockets are. */
const spliced = new WeakSet<Socket>()

/** The shortcuts of the pod whose netns has cookie `netnsCookie` and addresses `podIPs`. */
export function podShortcuts (deps: ShortcutDeps, netnsCookie: bigint, podIPs: Iterable<string>): PodShortcuts {
  const own = new Set(podIPs)
  const hopWhenBusy = (socket: Socket): void => {
    onceBusy(socket, () => {
      if (spliced.has(socket)) return
      deps.metrics.shortcut('hop', joinHop(deps.capture, netnsCookie, socket))
    })
  }
  return Object.freeze({
    accepted: hopWhenBusy,
    connector: (inner: Connector): Connector => (req) => {
      const socket = inner(req)
      if (own.has(req.host)) socket.once('connect', () => { hopWhenBusy(socket) })
      return socket
    },
    splicer: Object.freeze({
      splice (downstream: Socket, upstream: Socket, destination: { readonly netnsCookie?: bigint }): SpliceHandle | null {
        spliced.add(downstream)
        spliced.add(upstream)
        if (destination.netnsCookie === undefined) return null
        return spliceWhenBusy(deps.capture, netnsCookie, downstream, destination.netnsCookie, upstream, (ok) => { deps.metrics.shortcut('splice', ok) })
      }
    })
  })
}

/** Adds `socket`, a connected socket inside the netns of cookie `netnsCookie`; false if it could not. */
export function joinHop (capture: Pick<DataPathCapture, 'addHopEnd'>, netnsCookie: bigint, socket: Socket): boolean {
  const fd = socketFd(socket)
  const key = ownEnd(netnsCookie, socket)
  if (fd === null || key === null) return false
  return capture.addHopEnd(fd, key)
}

/**
 * The file descriptor of an open net.Socket, or null. The kernel adds a socket to a
 * SOCKHASH by its fd (the proxy's end of a hop, `addHopEnd`), and Node has no public API
 * for a socket's fd: this is the one place Ferry reads a Node internal, libuv's handle
 * (`_handle.fd`: the fd on Linux, -1 or no handle once closed). Without it the hop stays
 * on TCP; nothing else changes.
 */
export function socketFd (socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : null
}

/**
 * Splices the apps' ends of a same-node connection: `downstream` is the proxy's socket
 * accepted from the source app (netns `sourceCookie`), `upstream` the proxy's socket
 * connected to the destination app (netns `destCookie`). Null if it cannot be done.
 */
export function spliceApps (capture: Pick<DataPathCapture, 'splice' | 'unsplice'>, sourceCookie: bigint, downstream: Socket, destCookie: bigint, upstream: Socket): SpliceHandle | null {
  const source = peerEnd(sourceCookie, downstream)
  const dest = peerEnd(destCookie, upstream)
  if (source === null || dest === null || !capture.splice(source, dest)) return null
  let ended = false
  return {
    end () {
      if (ended) return { fromSource: 0, fromDestination: 0 }
      ended = true
      const { fromA, fromB } = capture.unsplice(source, dest)
      return { fromSource: fromA, fromDestination: fromB }
    }
  }
}

/**
 * Runs `fn` once `socket` has delivered its second chunk, and never after it closed:
 * a connection that exchanges more than one message is worth a shortcut's setup (bpf
 * calls, a psock per socket); a one-request connection never pays for it. Returns a
 * function that cancels.
 */
export function onceBusy (socket: Socket, fn: () => void): () => void {
  let chunks = 0
  const cancel = (): void => {
    socket.off('data', onData)
    socket.off('close', cancel)
  }
  function onData (): void {
    if (++chunks < 2) return
    cancel()
    fn()
  }
  socket.on('data', onData)
  socket.once('close', cancel)
  return cancel
}

/** spliceApps once the source app has sent its second chunk (see onceBusy); `onTried` hears whether it took. */
export function spliceWhenBusy (capture: Pick<DataPathCapture, 'splice' | 'unsplice'>, sourceCookie: bigint, downstream: Socket, destCookie: bigint, upstream: Socket, onTried: (ok: boolean) => void): SpliceHandle {
  let done: SpliceHandle | null = null
  let ended = false
  const cancel = onceBusy(downstream, () => {
    if (ended) return
    done = spliceApps(capture, sourceCookie, downstream, destCookie, upstream)
    onTried(done !== null)
  })
  return {
    end () {
      ended = true
      cancel()
      return done?.end() ?? { fromSource: 0, fromDestination: 0 }
    }
  }
}

/** The connection as `socket` sees it. */
function ownEnd (netnsCookie: bigint, socket: Socket): SockKeyShape | null {
  const localAddress = canonicalIP(socket.localAddress ?? '')
  const remoteAddress = canonicalIP(socket.remoteAddress ?? '')
  const { localPort, remotePort } = socket
  if (localAddress === null || remoteAddress === null || localPort === undefined || remotePort === undefined) return null
  return { netnsCookie, localAddress, localPort, remoteAddress, remotePort }
}

/** The connection as `socket`'s peer (the app, in the same netns) sees it. */
function peerEnd (netnsCookie: bigint, socket: Socket): SockKeyShape | null {
  const own = ownEnd(netnsCookie, socket)
  return own === null ? null : { netnsCookie, localAddress: own.remoteAddress, localPort: own.remotePort, remoteAddress: own.localAddress, remotePort: own.localPort }
}
