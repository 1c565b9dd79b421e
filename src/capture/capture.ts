import { isAbsolute, join, relative } from 'node:path'
import { ferryError } from '../errors'
import { type BpfLink, REPO_ROOT, ensureBpffsDir } from '../native'
import type { Logger } from '../telemetry/logger'
import { CaptureMaps } from './maps'
import { ensureKubeletLink, removeKubeletLink } from './kubelet-link'
import type { SockKey, SockmapStats } from './map-layout'
import { PinLayout } from './pins'
import { PodEntries } from './pod-entries'
import { ensurePodLinks, removePodLinks } from './pod-links'
import { checkPodSpec, checkUid, type PodCaptureSpec } from './pod-spec'
import { type ObjectName, Programs, SK_MSG } from './programs'
import { KERNEL_BTF, skMsgGap } from './sk-msg-fields'
import { type SockmapStatus, startShortcut } from './sk-msg-link'
import { SlotTable } from './slots'
import { checkLiveWorkers } from './workers'

// The capture controller: loads Ferry's eBPF programs, enrolls pods (maps + links),
// and answers the proxy's "where was this connection going?". Everything it
// creates is pinned under the pin root, so capture keeps working while the agent
// restarts; close() only closes this process's fds.

/** What sk_lookup did with the kubelet's connections to one pod since it was enrolled. */
export interface ProbeCounts {
  /** To a probe port: passed straight to the application. */
  readonly admitted: number
  /** To another port: steered to the proxy like any plaintext. */
  readonly notProbePort: number
  /** Recorded longer ago than the freshness bound: steered to the proxy. */
  readonly expired: number
}

export interface CaptureOptions {
  pinRoot: string
  /** Where the compiled *.bpf.o are; default <repo>/build/bpf. */
  objectDir?: string
  /** The kernel's BTF, checked for every field bpf/sk_msg.bpf.c reads; default PATHS.kernelBtf (/sys/kernel/btf/vmlinux). */
  kernelBtf?: string
  log: Logger
}

export class Capture {
  readonly pinRoot: string
  readonly #log: Logger
  readonly #pins: PinLayout
  #programs: Programs | undefined
  #maps: CaptureMaps | undefined
  #slots: SlotTable | undefined
  #entries: PodEntries | undefined
  /** Links this process holds open, by uid then program name. */
  readonly #links = new Map<string, Map<string, BpfLink>>()
  #skMsg: BpfLink | undefined
  #sockmapStatus: SockmapStatus = Object.freeze({ enabled: false })
  /** Probe admission: the kubelet link this process holds, and the cgroup it is on. */
  #kubelet: { link: BpfLink, cgroupPath: string } | undefined

  private constructor (opts: CaptureOptions, programs: Programs, maps: CaptureMaps) {
    this.pinRoot = opts.pinRoot
    this.#log = opts.log.child({ component: 'capture' })
    this.#pins = new PinLayout(opts.pinRoot)
    this.#programs = programs
    this.#maps = maps
    this.#slots = new SlotTable(maps.slots, maps.capacity)
    this.#entries = new PodEntries(maps)
  }

  static async open (opts: CaptureOptions): Promise<Capture> {
    if (typeof opts?.pinRoot !== 'string' || !isAbsolute(opts.pinRoot)) throw ferryError('FERRY_ERR_INVALID_ARG', 'pinRoot must be an absolute path')
    ensureBpffsDir(opts.pinRoot)
    // The sockmap shortcut reads kernel fields: on a kernel whose BTF lacks one, it stays off.
    const btfPath = opts.kernelBtf ?? KERNEL_BTF
    const gap = skMsgGap(btfPath)
    const skip = new Map<ObjectName, Error>()
    if (gap !== null) skip.set(SK_MSG.object, ferryError('FERRY_ERR_SOCKMAP_BTF', 'the kernel\'s BTF lacks what sk_msg reads'))
    const programs = Programs.load(opts.objectDir ?? join(REPO_ROOT, 'build', 'bpf'), opts.pinRoot, skip)
    let maps: CaptureMaps
    try {
      maps = new CaptureMaps(programs)
    } catch (err) {
      programs.close()
      throw err
    }
    const capture = new Capture(opts, programs, maps)
    // The live set describes the listeners of the agent that wrote it; this one starts
    // with worker 0 (all an agent of one worker needs) until it says otherwise.
    maps.workers.set(0, [0])
    // Splices outlive the agent that made them only as stale entries: its sockets died with
    // it, so its connections are gone. (Were another agent still draining on this pin root,
    // its connections would simply go on by TCP: a splice is never needed for correctness.)
    const retired = capture.#pins.removeRetiredMaps()
    if (retired.length > 0) capture.#log.info({ maps: retired }, 'unpinned maps an earlier agent left that this one does not use')
    const stale = maps.splice.keys()
    for (const k of stale) maps.splice.delete(k)
    if (stale.length > 0) capture.#log.info({ entries: stale.length }, 'removed splices left by an earlier agent')
    // The sockmap shortcut is an optimization: without it every hop takes TCP.
    const shortcut = startShortcut(programs, capture.#pins, gap, btfPath, capture.#log)
    capture.#skMsg = shortcut.link
    capture.#sockmapStatus = shortcut.status
    capture.#log.info({ pinRoot: opts.pinRoot, pinnedPods: capture.enrolledUids().length, sockmap: capture.sockmap }, 'capture programs loaded')
    return capture
  }

  /**
   * Enrolls a pod, or re-enrolls it (same uid): map entries are brought to the
   * spec, and links pinned by an earlier agent are switched to this agent's
   * programs in place. Never attaches twice.
   */
  enrollPod (spec: PodCaptureSpec): void {
    checkPodSpec(spec)
    const { programs, entries, slots } = this.live()
    const fresh = slots.get(spec.uid) === undefined
    const slot = slots.acquire(spec.uid)
    try {
      if (fresh) entries.resetCounters(slot)
      entries.write(slot, spec)
      // Reopened from the pins even when held: a changed cgroup or netns is caught the same way.
      for (const l of this.#links.get(spec.uid)?.values() ?? []) l.close()
      this.#links.delete(spec.uid)
      this.#links.set(spec.uid, ensurePodLinks(programs, this.#pins, spec.uid, spec, this.#log))
    } catch (err) {
      if (fresh) this.unenrollPod(spec.uid)
      throw ferryError('FERRY_ERR_ENROLL', `cannot enroll pod ${spec.uid}: ${(err as Error).message}`, { cause: err, errno: (err as { errno?: string }).errno })
    }
    const kubelet = this.#kubelet?.cgroupPath
    if (kubelet !== undefined && isWithin(spec.cgroupPath, kubelet)) {
      this.#log.warn({ uid: spec.uid, cgroup: spec.cgroupPath, kubeletCgroup: kubelet, code: 'FERRY_ERR_KUBELET_CGROUP' }, 'the pod\'s cgroup is inside the kubelet\'s: its connections from the node\'s netns would count as the kubelet\'s probes')
    }
    this.#log.info({ uid: spec.uid, slot, ips: spec.podIPs, probePorts: spec.probePorts ?? [], reused: !fresh }, 'pod enrolled')
  }

  /**
   * The data-path workers whose inbound listeners take new connections, node-wide
   * (bpf/sk_lookup.bpf.c picks one of them per SYN, by a hash of the client's address
   * and port, among those that have a listener for the pod). Capture.open starts with
   * [0]. Take a worker out before its listeners close: its SYNs then go to the others,
   * and connections already queued on its listeners stay there to be accepted. An empty
   * set takes no new connections: fail-closed pods refuse them, the others let them
   * reach the application. Throws FERRY_ERR_INVALID_ARG for ids outside [0, MAX_WORKERS).
   */
  setLiveWorkers (ids: readonly number[]): void {
    const live = checkLiveWorkers(ids)
    this.live().maps.workers.set(0, live)
    this.#log.debug({ liveWorkers: live }, 'live workers set')
  }

  /**
   * Probe admission on (a cgroup path) or off (null). On: bpf/kubelet.bpf.c is attached
   * to the kubelet's cgroup, or the link an earlier agent pinned is adopted and updated in
   * place (never attached twice); a connection the kubelet makes to one of a pod's probe
   * ports then reaches the application directly, agent or no agent. Off: the pinned link,
   * if any, is detached. Throws FERRY_ERR_KUBELET_CGROUP.
   */
  setKubeletCgroup (cgroupPath: string | null): void {
    const { programs } = this.live()
    this.#kubelet?.link.close()
    this.#kubelet = undefined
    if (cgroupPath === null) {
      if (removeKubeletLink(this.#pins, this.#log)) this.#log.info('probe admission turned off: detached the kubelet link an earlier agent left')
      return
    }
    const link = ensureKubeletLink(programs, this.#pins, cgroupPath, this.#log)
    this.#kubelet = { link, cgroupPath }
    this.#log.debug({ kubeletCgroup: cgroupPath, link: link.info().id }, 'kubelet link in place')
  }

  /** Probe counts of every enrolled pod, by uid (read from the kernel's counters). */
  probeCounts (): Map<string, ProbeCounts> {
    const { maps, slots } = this.live()
    const out = new Map<string, ProbeCounts>()
    for (const uid of slots.uids()) {
      const s = maps.probeStats.get(slots.get(uid) as number)
      if (s !== null) out.set(uid, { admitted: Number(s.admitted), notProbePort: Number(s.notProbePort), expired: Number(s.expired) })
    }
    return out
  }

  /** Detaches and unpins the pod's links and deletes its map entries. Unknown uids are a no-op. */
  unenrollPod (uid: string): void {
    checkUid(uid)
    const { entries, slots } = this.live()
    removePodLinks(this.#pins, uid, this.#links.get(uid), this.#log)
    this.#links.delete(uid)
    const slot = slots.get(uid)
    if (slot !== undefined) {
      entries.purge(slot)
      slots.release(uid)
    }
    this.#log.info({ uid, slot }, 'pod unenrolled')
  }

  /** After a restart: removes pods (pins, entries, slots) not in keepUids, and orphan entries. */
  reconcile (keepUids: Set<string>): void {
    const { entries, slots } = this.live()
    const known = new Set([...slots.uids(), ...this.#pins.podUids()])
    for (const uid of known) if (!keepUids.has(uid)) this.unenrollPod(uid)
    entries.purgeOrphans(slots.slots())
  }

  /** The fds of the maps the data path uses (valid while capture is open), for data-path workers (src/worker/data-path-capture.ts). */
  dataPathMaps (): { origDst: number, socks: number, splice: number, skMsg: boolean } {
    const { maps } = this.live()
    return { origDst: maps.origDst.fd, socks: maps.socks.fd, splice: maps.splice.fd, skMsg: this.#skMsg !== undefined }
  }

  /**
   * The destination an outbound connection asked for, from the accepted socket's
   * pod netns cookie, family and peer port. Deletes the record: ask once.
   */
  originalDst (netnsCookie: bigint, family: 4 | 6, localPort: number): { address: string, port: number } | null {
    const dst = this.live().maps.origDst.take({ netnsCookie, family, port: localPort })
    return dst === null ? null : { address: dst.address, port: dst.port }
  }

  /**
   * Adds a proxy socket to ferry_socks as its end of a plaintext hop inside a pod's
   * netns (key: the connection as this socket sees it), so that sk_msg.bpf.c can pass
   * bytes between it and the pod's end without TCP. False when the kernel refuses
   * (map full, socket no longer established): the hop simply stays on TCP.
   */
  addHopEnd (fd: number, key: SockKey): boolean {
    if (this.#skMsg === undefined) return false
    const { socks } = this.live().maps
    try {
      socks.set(key, BigInt(fd), 'noexist')
    } catch {
      return false
    }
    // Reading the entry back gives the socket its cookie, without which sk_msg never publishes this end.
    socks.get(key)
    return true
  }

  /**
   * Splices a same-node connection app to app: each pod's end (a, b: the connection
   * as that app's socket sees it) may send straight to the other (bpf/sk_msg.bpf.c).
   * False, with nothing left behind, if the map refuses.
   */
  splice (a: SockKey, b: SockKey): boolean {
    if (this.#skMsg === undefined) return false
    const { splice } = this.live().maps
    try {
      splice.set(a, { to: b, bytes: 0n }, 'noexist')
      try {
        splice.set(b, { to: a, bytes: 0n }, 'noexist')
      } catch (err) {
        splice.delete(a)
        throw err
      }
      return true
    } catch {
      return false
    }
  }

  /** Ends a splice; the bytes each end sent directly to the other. */
  unsplice (a: SockKey, b: SockKey): { fromA: number, fromB: number } {
    const { splice } = this.live().maps
    const fromA = splice.take(a)?.bytes ?? 0n
    const fromB = splice.take(b)?.bytes ?? 0n
    return { fromA: Number(fromA), fromB: Number(fromB) }
  }

  /** Whether the sockmap shortcut is in place (sk_msg attached to ferry_socks). */
  get sockmap (): boolean { return this.#skMsg !== undefined }

  /** Whether the sockmap shortcut is on and, if not, why (a stable code; logged once at open). */
  sockmapStatus (): SockmapStatus { return this.#sockmapStatus }

  /** What sk_msg did with the hops' messages since the maps were made (node-wide counters). */
  sockmapStats (): SockmapStats {
    return this.live().maps.sockmapStats.get(0) ?? { fromPodMsgs: 0n, fromPodBytes: 0n, toPodMsgs: 0n, toPodBytes: 0n, tcpMsgs: 0n }
  }

  /** Uids with a persisted slot: enrolled by this agent or an earlier one. */
  enrolledUids (): string[] { return this.live().slots.uids() }

  /** The pod's slot (stable across restarts), if enrolled. */
  slotOf (uid: string): number | undefined { return this.live().slots.get(uid) }

  /** Closes this process's fds. Pins stay: capture goes on without the agent. */
  close (): void {
    for (const links of this.#links.values()) for (const l of links.values()) l.close()
    this.#links.clear()
    this.#skMsg?.close()
    this.#skMsg = undefined
    this.#kubelet?.link.close()
    this.#kubelet = undefined
    this.#maps?.close()
    this.#programs?.close()
    this.#maps = undefined
    this.#programs = undefined
    this.#slots = undefined
    this.#entries = undefined
  }

  private live (): { programs: Programs, maps: CaptureMaps, slots: SlotTable, entries: PodEntries } {
    if (this.#programs === undefined || this.#maps === undefined || this.#slots === undefined || this.#entries === undefined) {
      throw ferryError('FERRY_ERR_INVALID_ARG', 'capture is closed')
    }
    return { programs: this.#programs, maps: this.#maps, slots: this.#slots, entries: this.#entries }
  }
}

/** True when `path` is `dir` or below it. */
function isWithin (path: string, dir: string): boolean {
  const rel = relative(dir, path)
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))
}
