import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import type { AdminAuth } from '../../src/agent/admin-auth'
import type { CaptureHandle, NetnsHandle, Platform, PodCaptureSpec } from '../../src/agent/platform'
import { ferryError } from '../../src/errors'

// A stand-in for the addon and capture, for testing the agent's control loop without
// root: a "netns" is any existing file (missing file → FERRY_ERR_NETNS, like a pod whose
// namespace is not there yet), listeners are real sockets on loopback port 0, upstream
// sockets are plain connections, and capture records what it was asked to do.
// The data path still runs on real sockets.

export class RecordingCapture implements CaptureHandle {
  readonly calls: string[] = []
  readonly specs = new Map<string, PodCaptureSpec>()
  /** What eBPF "recorded" for every captured connection. */
  originalDestination: { address: string, port: number } | null = null
  readonly lookups: Array<[bigint, number, number]> = []
  /** The kubelet cgroup probe admission was given (undefined: never asked). */
  kubeletCgroup: string | null | undefined
  /** What the "kernel" counted for each pod's kubelet connections. */
  readonly probes = new Map<string, { admitted: number, notProbePort: number, expired: number }>()

  enrollPod (s: PodCaptureSpec): void { this.calls.push(`enroll ${s.uid}`); this.specs.set(s.uid, s) }
  unenrollPod (uid: string): void { this.calls.push(`unenroll ${uid}`); this.specs.delete(uid) }
  /** The live workers as last set (opening starts with [0], as the real capture does). */
  liveWorkers: readonly number[] = [0]
  setLiveWorkers (ids: readonly number[]): void { this.calls.push(`live ${ids.join(',')}`); this.liveWorkers = [...ids] }
  reconcile (keep: Set<string>): void { this.calls.push(`reconcile ${[...keep].sort().join(',')}`) }
  originalDst (cookie: bigint, family: 4 | 6, port: number): { address: string, port: number } | null {
    this.lookups.push([cookie, family, port])
    return this.originalDestination
  }

  addHopEnd (): boolean { return false }
  splice (): boolean { return false }
  unsplice (): { fromA: number, fromB: number } { return { fromA: 0, fromB: 0 } }
  enrolledUids (): string[] { return [...this.specs.keys()] }
  setKubeletCgroup (path: string | null): void { this.calls.push(`kubelet ${path ?? 'off'}`); this.kubeletCgroup = path }
  probeCounts (): ReadonlyMap<string, { admitted: number, notProbePort: number, expired: number }> { return this.probes }
  close (): void { this.calls.push('close') }
}

export function loopbackPlatform (capture: RecordingCapture): Platform & { opened: string[], closedNs: string[] } {
  let cookie = 0n
  const opened: string[] = []
  const closedNs: string[] = []
  return {
    opened,
    closedNs,
    openNetns (path: string): NetnsHandle {
      if (!existsSync(path)) throw ferryError('FERRY_ERR_NETNS', `cannot open ${path}`, { errno: 'ENOENT' })
      opened.push(path)
      const notHere = (): never => { throw new Error('not on the loopback platform') }
      return { path, fd: -1, cookie: ++cookie, listen: notHere, socket: notHere, close: () => { closedNs.push(path) } }
    },
    listen: (_ns, o) => ({ host: o.address, port: 0 }),
    connectInNetns: (_ns, o) => connect({ host: o.host, port: o.port }),
    openCapture: async () => capture
  }
}

/** An admin server whose /debug/* is open to the test (who may read it is test/policy/agent-check.test.ts's subject). */
export const OPEN_DEBUG: AdminAuth = Object.freeze({ schemes: ['test'], check: async () => ({ ok: true as const, who: 'test' }) })
