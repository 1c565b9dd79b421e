import type { Socket } from 'node:net'
import { canonicalIP } from '../discovery/ip'
import type { SpliceHandle } from '../proxy'
import type { CaptureHandle, SockKeyShape } from './platform'

// The kernel shortcuts of the plaintext hops between pods and the proxy (bpf/sk_msg.bpf.c).
//
// Hop: the proxy's end of a hop joins ferry_socks, so its bytes pass between the pod's
// socket and ours without TCP. Two hops qualify, both inside one pod's netns over its lo:
// a connection accepted on the pod's outbound listener (its peer is the app's captured
// connect) and a connection the proxy makes to the pod's own address (tunnel delivery;
// its peer is the app's accepted socket). The pod's ends join in the kernel
// (bpf/sockops.bpf.c). Joining changes no byte of the stream (the eBPF side keeps order
// and bounds its queue), so a refusal only means the hop stays on TCP, and joining late
// is as safe as joining early: the agent joins when a connection delivers its second
// chunk (onceBusy), so a one-request connection never pays the setup.
//
// Splice: a same-node connection, once authorized, passes bytes app to app. Neither of
// its hops joins (the splice counts each app's TCP bytes to know when nothing is in
// flight through the proxy); the proxy keeps relaying what still takes TCP, and FINs.

/** Adds `socket`, a connected socket inside the netns of cookie `netnsCookie`; false if it could not. */
export function joinHop (capture: Pick<CaptureHandle, 'addHopEnd'>, netnsCookie: bigint, socket: Socket): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  const key = ownEnd(netnsCookie, socket)
  if (fd === undefined || fd < 0 || key === null) return false
  return capture.addHopEnd(fd, key)
}

/**
 * Splices the apps' ends of a same-node connection: `downstream` is the proxy's socket
 * accepted from the source app (netns `sourceCookie`), `upstream` the proxy's socket
 * connected to the destination app (netns `destCookie`). Null if it cannot be done.
 */
export function spliceApps (capture: Pick<CaptureHandle, 'splice' | 'unsplice'>, sourceCookie: bigint, downstream: Socket, destCookie: bigint, upstream: Socket): SpliceHandle | null {
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
export function spliceWhenBusy (capture: Pick<CaptureHandle, 'splice' | 'unsplice'>, sourceCookie: bigint, downstream: Socket, destCookie: bigint, upstream: Socket, onTried: (ok: boolean) => void): SpliceHandle {
  let spliced: SpliceHandle | null = null
  let ended = false
  const cancel = onceBusy(downstream, () => {
    if (ended) return
    spliced = spliceApps(capture, sourceCookie, downstream, destCookie, upstream)
    onTried(spliced !== null)
  })
  return {
    end () {
      ended = true
      cancel()
      return spliced?.end() ?? { fromSource: 0, fromDestination: 0 }
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
