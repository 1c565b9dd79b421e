import type { Socket } from 'node:net'
import { Capture, type PodCaptureSpec as CapturePodSpec } from '../capture'
import { connectInNetns, type Netns, openNetns } from '../native'
import type { ListenTarget } from '../proxy/listener'
import type { Logger } from '../telemetry/logger'
import { SynFilter } from '../tunnel-syn'

// The agent's only coupling to the native addon (src/native) and the eBPF capture
// controller (src/capture). The agent codes against the narrow structural shapes
// below; the compile-time checks at the bottom prove the real Netns and Capture fit
// them, and the loopback platform of test/agent fits them too.
export interface NetnsHandle {
  readonly path: string
  readonly fd: number
  readonly cookie: bigint
  listen (o: { family: 4 | 6, address: string, port: number, backlog?: number, reusePort?: boolean }): number
  socket (family: 4 | 6): number
  close (): void
}

export interface PodCaptureSpec {
  uid: string
  netns: NetnsHandle
  cgroupPath: string
  podIPs: string[]
  excludeOutboundPorts: number[]
  excludeInboundPorts: number[]
  /** Ports the pod's probes name: the kubelet's connections to them reach the pod directly. */
  probePorts?: number[]
  /** The pod's inbound listeners (127.0.0.1 and ::1), one pair per data-path worker: index = worker id. */
  inboundListenerFds: ReadonlyArray<{ v4: number, v6: number }>
  failClosed?: boolean
}

/** What sk_lookup did with the kubelet's connections to one pod (src/capture ProbeCounts). */
export interface ProbeCountsShape { readonly admitted: number, readonly notProbePort: number, readonly expired: number }

/** One end of a TCP connection as that end sees it (src/capture/map-layout.ts SockKey). */
export interface SockKeyShape { netnsCookie: bigint, localAddress: string, localPort: number, remoteAddress: string, remotePort: number }

export interface CaptureHandle {
  /** Enrolls (or re-enrolls) a pod; its listeners of every worker go in the selection map. */
  enrollPod (s: PodCaptureSpec): void
  /** Takes the pod out of capture, its listeners of every worker out of the selection map. */
  unenrollPod (uid: string): void
  /**
   * The workers whose listeners take new inbound connections (opening starts with [0]).
   * A worker leaves this set before its listeners close. Throws FERRY_ERR_INVALID_ARG.
   */
  setLiveWorkers (ids: readonly number[]): void
  reconcile (keep: Set<string>): void
  originalDst (netnsCookie: bigint, family: 4 | 6, localPort: number): { address: string, port: number } | null
  /** Adds a proxy socket's fd as its end of a plaintext hop (src/worker/hop-shortcut.ts); false if refused. */
  addHopEnd (fd: number, key: SockKeyShape): boolean
  /** Splices a same-node connection app to app (src/worker/hop-shortcut.ts); false if refused. */
  splice (a: SockKeyShape, b: SockKeyShape): boolean
  unsplice (a: SockKeyShape, b: SockKeyShape): { fromA: number, fromB: number }
  enrolledUids (): string[]
  /** Probe admission on the kubelet's cgroup (a directory), or off (null). Throws FERRY_ERR_KUBELET_CGROUP. */
  setKubeletCgroup (cgroupPath: string | null): void
  /** The fds of the maps data-path worker threads use; absent on the test platforms (one worker, on the main thread). */
  dataPathMaps?: () => { origDst: number, socks: number, splice: number, skMsg: boolean }
  /** The kubelet's connections to each enrolled pod, by uid, as sk_lookup counted them. */
  probeCounts (): ReadonlyMap<string, ProbeCountsShape>
  /** Whether the sockmap shortcut is on (else the FERRY_ERR_* code and why) and what sk_msg counted; absent on the test platforms. */
  sockmapReport?: () => SockmapReportShape
  close (): void
}

/** The sockmap shortcut's state (src/capture/sk-msg-link.ts SockmapStatus, map-layout.ts SockmapStats). */
export interface SockmapReportShape {
  readonly status: { readonly enabled: boolean, readonly code?: string, readonly reason?: string, readonly missing?: readonly string[] }
  readonly stats: { readonly fromPodMsgs: bigint, readonly fromPodBytes: bigint, readonly toPodMsgs: bigint, readonly toPodBytes: bigint, readonly tcpMsgs: bigint }
}

/** What the kernel did with SYNs to the tunnel port (src/tunnel-syn SynCounts). */
export interface SynCountsShape { readonly admitted: number, readonly dropped: number, readonly untracked: number, readonly peer: number }

/**
 * The tunnel port's admission in the kernel (src/tunnel-syn): every listener made through
 * it drops the SYNs of a source over its rate (one table for all of them) and defers
 * accept until data arrives.
 */
export interface TunnelSynHandle {
  /**
   * A listening socket in the agent's netns, its fd (for net.Server.listen({ fd })). With
   * reusePort (a wildcard address and a fixed port, the same for every call), one per
   * worker may share the port, and the kernel hands each new connection to a live
   * worker's listener only (setListener, setLiveWorkers), never to another process's.
   */
  listen (o: { family: 4 | 6, address: string, port: number, backlog: number, dualStack: boolean, deferAcceptSeconds: number, reusePort?: boolean }): number
  /** A listener handed over by the agent before us: this filter replaces its old one (and the port's worker choice is attached for reusePort). Returns fd. */
  adopt (fd: number, o: { port: number, reusePort: boolean }): number
  /** Worker `worker`'s reusePort listener (an fd from listen()), or null to take it out. */
  setListener (worker: number, fd: number | null): void
  /** The workers whose tunnel listeners take new connections (initially [0]); none: SYNs are refused. */
  setLiveWorkers (ids: readonly number[]): void
  /** The peer nodes' addresses: exempt from the kernel's SYN rate (a SYN can be spoofed). */
  setPeers (addresses: Iterable<string>): void
  counts (): SynCountsShape
  close (): void
}

/** What the agent needs from the machine: namespaces, in-namespace listeners and sockets, capture. */
export interface Platform {
  openNetns (path: string): NetnsHandle
  /** A listener inside the namespace, as something proxy/listener.serve() accepts. */
  listen (ns: NetnsHandle, o: { family: 4 | 6, address: string, port: number, reusePort?: boolean }): ListenTarget
  /** A socket created inside the namespace, connecting to host:port. */
  connectInNetns (ns: NetnsHandle, o: { host: string, port: number, family: 4 | 6, timeoutMs?: number }): Socket
  openCapture (o: { pinRoot: string, log: Logger }): Promise<CaptureHandle>
  /**
   * The tunnel port's kernel admission with these per-source limits. Absent (the test
   * platforms), the tunnel port is guarded in user space only.
   */
  openTunnelSyn?: (limits: { perSecond: number, burst: number }) => TunnelSynHandle
}

/**
 * The real platform: the addon and the eBPF capture controller. `kernelBtf` replaces the
 * kernel BTF capture checks the sockmap shortcut against (PATHS.kernelBtf), for tests.
 */
export function loadNativePlatform (opts: { kernelBtf?: string } = {}): Platform {
  return {
    openNetns: (path) => openNetns(path),
    listen: (ns, o) => ({ fd: ns.listen({ family: o.family, address: o.address, port: o.port, reusePort: o.reusePort === true }) }),
    // The connect stage owns the connect timeout (and reports it as connect_timeout),
    // so none is armed here; allowHalfOpen because the relay forwards each FIN alone.
    connectInNetns: (ns, o) => connectInNetns(ns as Netns, { host: o.host, port: o.port, family: o.family, allowHalfOpen: true }),
    openCapture: async (o) => {
      const capture = await Capture.open({ pinRoot: o.pinRoot, log: o.log, ...(opts.kernelBtf !== undefined ? { kernelBtf: opts.kernelBtf } : {}) })
      return {
        enrollPod: (spec) => { capture.enrollPod(spec as CapturePodSpec) },
        unenrollPod: (uid) => { capture.unenrollPod(uid) },
        setLiveWorkers: (ids) => { capture.setLiveWorkers(ids) },
        reconcile: (keep) => { capture.reconcile(keep) },
        originalDst: (cookie, family, port) => capture.originalDst(cookie, family, port),
        addHopEnd: (fd, key) => capture.addHopEnd(fd, key),
        splice: (a, b) => capture.splice(a, b),
        unsplice: (a, b) => capture.unsplice(a, b),
        enrolledUids: () => capture.enrolledUids(),
        setKubeletCgroup: (path) => { capture.setKubeletCgroup(path) },
        probeCounts: () => capture.probeCounts(),
        sockmapReport: () => ({ status: capture.sockmapStatus(), stats: capture.sockmapStats() }),
        dataPathMaps: () => capture.dataPathMaps(),
        close: () => { capture.close() }
      }
    },
    openTunnelSyn: (limits) => SynFilter.load(limits)
  }
}

// Compile-time checks that the real API still matches the shapes the agent relies on.
type Assignable<T, U extends T> = U
export type NetnsFits = Assignable<NetnsHandle, Netns>
export type CaptureFits = Assignable<Omit<CaptureHandle, 'enrollPod'>, Capture>
export type SpecFits = Assignable<Omit<PodCaptureSpec, 'netns'>, Omit<CapturePodSpec, 'netns'>>
export type SynFits = Assignable<TunnelSynHandle, SynFilter>
