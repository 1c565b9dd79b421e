import type { Socket } from 'node:net'
import { canonicalIP } from '../discovery/ip'
import type { CaptureHandle } from './platform'

// The proxy's end of a plaintext hop joins ferry_socks, so that bpf/sk_msg.bpf.c can
// pass the hop's bytes between the pod's socket and ours without TCP. Two hops qualify,
// both inside one pod's netns over its lo: a connection accepted on the pod's
// outbound listener (its peer is the app's captured connect) and a connection the
// proxy makes to the pod's own address (same-node and tunnel delivery; its peer is
// the app's accepted socket). The pod's ends join in the kernel (bpf/sockops.bpf.c).
// Joining changes no byte of the stream (the eBPF side keeps order and bounds its
// queue), so a refusal only means the hop stays on TCP.

/** Adds `socket`, a connected socket inside the netns of cookie `netnsCookie`; false if it could not. */
export function joinHop (capture: Pick<CaptureHandle, 'addHopEnd'>, netnsCookie: bigint, socket: Socket): boolean {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  const localAddress = canonicalIP(socket.localAddress ?? '')
  const remoteAddress = canonicalIP(socket.remoteAddress ?? '')
  const { localPort, remotePort } = socket
  if (fd === undefined || fd < 0 || localAddress === null || remoteAddress === null || localPort === undefined || remotePort === undefined) return false
  return capture.addHopEnd(fd, { netnsCookie, localAddress, localPort, remoteAddress, remotePort })
}
