import type { Socket } from 'node:net'
import type { LocalPod } from './mesh'

// The same-node splice (outbound, path `local`, src/proxy/same-node.ts): once such a
// connection is authorized and connected, the two apps' sockets may pass bytes straight
// to each other in the kernel. The proxy decides *when* to ask; whoever runs the proxy
// decides whether it can (the agent's workers: src/worker/hop-shortcut.ts over
// bpf/sk_msg.bpf.c). Optional: without a Splicer, or when it declines, every byte goes
// through the proxy by TCP. The proxy knows nothing else of the kernel's shortcuts.

export interface SpliceHandle {
  /** Ends the splice (idempotent); the bytes each app sent straight to the other. */
  end (): { fromSource: number, fromDestination: number }
}

export interface Splicer {
  /** A same-node connection, authorized and connected: pass bytes app to app. Null: declined (all by TCP). */
  splice (downstream: Socket, upstream: Socket, destination: LocalPod): SpliceHandle | null
}
