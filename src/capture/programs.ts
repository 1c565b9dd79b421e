import { join } from 'node:path'
import { PORTS } from '../config/env'
import { BpfObject, closeFd, type BpfLink } from '../native'

// The eBPF objects Ferry loads and the hooks each pod gets. One object per hook
// file; all share the maps pinned under the pin root.

export type ObjectName = 'connect' | 'sockops' | 'getpeername' | 'sk_lookup' | 'sk_msg' | 'kubelet'

export interface Hook {
  object: ObjectName
  /** Program name in the object; also the link's pin name under pods/<uid>/. */
  prog: string
  target: 'cgroup' | 'netns'
}

export const HOOKS: readonly Hook[] = Object.freeze([
  { object: 'connect', prog: 'ferry_connect4', target: 'cgroup' },
  { object: 'connect', prog: 'ferry_connect6', target: 'cgroup' },
  { object: 'sockops', prog: 'ferry_sockops', target: 'cgroup' },
  { object: 'getpeername', prog: 'ferry_getpeername4', target: 'cgroup' },
  { object: 'getpeername', prog: 'ferry_getpeername6', target: 'cgroup' },
  { object: 'sk_lookup', prog: 'ferry_sk_lookup', target: 'netns' }
])

/** The one hook attached to the node's kubelet rather than to each pod (probe admission). */
export const KUBELET_HOOK: Hook = Object.freeze({ object: 'kubelet', prog: 'ferry_kubelet_sockops', target: 'cgroup' })

/**
 * How long after the kubelet's connect() its record admits a SYN at the pod. The SYN
 * arrives within microseconds; the bound covers its retransmissions (1 s, 3 s, 7 s
 * after the first) and limits a record whose close the program missed.
 */
export const PROBE_FRESH_MS = 10_000

/** Load-time settings (`const volatile` in .rodata) per object. */
const RODATA: Record<ObjectName, Record<string, number>> = {
  connect: { ferry_outbound_port: PORTS.outbound, ferry_inbound_port: PORTS.inbound },
  sockops: {},
  getpeername: { ferry_outbound_port: PORTS.outbound },
  sk_lookup: { ferry_inbound_port: PORTS.inbound, ferry_probe_fresh_ns: PROBE_FRESH_MS * 1_000_000 },
  sk_msg: {},
  kubelet: {}
}

/** The one program attached to a map rather than to each pod: sk_msg on ferry_socks. */
export const SK_MSG = Object.freeze({ object: 'sk_msg' as const, prog: 'ferry_sk_msg', map: 'ferry_socks' })

export interface HookTarget { cgroupPath: string, netnsFd: number }

/**
 * Objects capture works without: the sockmap shortcut (an older kernel may lack sockmap
 * links or a field sk_msg.bpf.c reads). Their load error is kept, not thrown.
 */
const OPTIONAL: ReadonlySet<ObjectName> = new Set([SK_MSG.object])

export class Programs {
  readonly #objects: Map<ObjectName, BpfObject>
  /** Why an optional object did not load, by name. */
  readonly unavailable: ReadonlyMap<ObjectName, Error>

  private constructor (objects: Map<ObjectName, BpfObject>, unavailable: Map<ObjectName, Error>) {
    this.#objects = objects
    this.unavailable = unavailable
  }

  /**
   * Loads every object; the first creates the pinned maps, the rest reuse them. An
   * optional object named in `skip` is not loaded: `unavailable` keeps the reason.
   */
  static load (objectDir: string, pinRoot: string, skip: ReadonlyMap<ObjectName, Error> = new Map()): Programs {
    const objects = new Map<ObjectName, BpfObject>()
    const unavailable = new Map<ObjectName, Error>()
    try {
      for (const name of Object.keys(RODATA) as ObjectName[]) {
        const skipped = OPTIONAL.has(name) ? skip.get(name) : undefined
        if (skipped !== undefined) {
          unavailable.set(name, skipped)
          continue
        }
        try {
          objects.set(name, BpfObject.open({ path: join(objectDir, `${name}.bpf.o`), pinRoot, rodata: RODATA[name] }))
        } catch (err) {
          if (!OPTIONAL.has(name)) throw err
          unavailable.set(name, err as Error)
        }
      }
    } catch (err) {
      for (const o of objects.values()) o.close()
      throw err
    }
    return new Programs(objects, unavailable)
  }

  has (name: ObjectName): boolean { return this.#objects.has(name) }

  progFd (hook: Hook): number { return this.object(hook.object).progFd(hook.prog) }

  attach (hook: Hook, target: HookTarget): BpfLink {
    const obj = this.object(hook.object)
    return hook.target === 'cgroup' ? obj.attachCgroup(hook.prog, target.cgroupPath) : obj.attachNetns(hook.prog, target.netnsFd)
  }

  /** Attaches sk_msg to ferry_socks as a link pinned at pinPath. */
  attachSkMsg (pinPath: string): BpfLink {
    const mapFd = this.mapFd(SK_MSG.map)
    try {
      return this.object(SK_MSG.object).attachSkMsg(SK_MSG.prog, mapFd, pinPath)
    } finally {
      closeFd(mapFd)
    }
  }

  skMsgProgFd (): number { return this.object(SK_MSG.object).progFd(SK_MSG.prog) }

  /** A new fd of a shared map (any object has them all). */
  mapFd (name: string): number { return this.object('connect').mapFd(name) }

  close (): void {
    for (const o of this.#objects.values()) o.close()
    this.#objects.clear()
  }

  private object (name: ObjectName): BpfObject {
    const o = this.#objects.get(name)
    if (o === undefined) throw new Error(`eBPF object ${name} is not loaded`)
    return o
  }
}
