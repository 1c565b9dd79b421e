import type { Socket } from 'node:net'
import type { LocalPod } from './mesh'

// The kernel shortcuts a pod's outbound connections may take (the agent's
// src/agent/hop-shortcut.ts over bpf/sk_msg.bpf.c). Optional everywhere: without them,
// or when one is refused, every byte simply goes through the proxy by TCP.

export interface SpliceHandle {
  /** Ends the splice (idempotent); the bytes each app sent straight to the other. */
  end (): { fromSource: number, fromDestination: number }
}

export interface Shortcuts {
  /** The proxy's end of the pod's hop (the accepted socket): pass it without TCP. */
  join (socket: Socket): void
  /** A same-node connection, authorized and connected: pass bytes app to app. */
  splice (downstream: Socket, upstream: Socket, destination: LocalPod): SpliceHandle | null
}
