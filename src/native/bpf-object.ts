import { closeSync, existsSync } from 'node:fs'
import { ferryError } from '../errors'
import { native } from './binding'
import type { NativeBpfLink, NativeBpfObject, NativeLinkInfo, NativeProgramInfo } from './native'

// An eBPF object file, opened and loaded (libbpf), and the links it attaches.

export interface BpfObjectOptions {
  /** The compiled object, e.g. build/bpf/connect.bpf.o. */
  path: string
  /** Maps declared LIBBPF_PIN_BY_NAME are pinned here, or reused if already pinned (omit for an object that pins nothing). */
  pinRoot?: string
  /** `const volatile` variables of .rodata to set before load, by name. */
  rodata?: Record<string, number>
}

export class BpfLink {
  #link: NativeBpfLink
  constructor (link: NativeBpfLink) { this.#link = link }

  /** Opens a link pinned by an earlier (possibly dead) agent. */
  static openPinned (path: string): BpfLink { return new BpfLink(native().BpfLink.openPinned(path)) }

  get fd (): number { return this.#link.fd }
  pin (path: string): void { this.#link.pin(path) }
  unpin (): void { this.#link.unpin() }
  /** Swaps the attached program in place (BPF_LINK_UPDATE): no moment without a program. */
  update (progFd: number): void { this.#link.update(progFd) }
  info (): NativeLinkInfo { return this.#link.info() }
  /** Unhooks the program now, even if pins hold the link. */
  detach (): void { this.#link.detach() }
  close (): void { this.#link.close() }
}

export class BpfObject {
  readonly path: string
  #obj: NativeBpfObject

  private constructor (path: string, obj: NativeBpfObject) {
    this.path = path
    this.#obj = obj
  }

  static open (opts: BpfObjectOptions): BpfObject {
    if (!existsSync(opts.path)) throw ferryError('FERRY_ERR_NATIVE_MISSING', `eBPF object ${opts.path} is not built: run \`npm run build:bpf\``)
    const rodata = opts.rodata ?? {}
    for (const [name, value] of Object.entries(rodata)) {
      if (!Number.isSafeInteger(value) || value < 0) throw ferryError('FERRY_ERR_INVALID_ARG', `load-time setting ${name} must be a non-negative integer`)
    }
    return new BpfObject(opts.path, new (native().BpfObject)(opts.path, opts.pinRoot ?? '', rodata))
  }

  programs (): NativeProgramInfo[] { return this.#obj.programs() }
  /** Borrowed fd, valid until close(). */
  progFd (name: string): number { return this.#obj.progFd(name) }
  /** A new fd of the map; the caller closes it (fs.closeSync or BpfMap.close). */
  mapFd (name: string): number { return this.#obj.mapFd(name) }
  attachCgroup (progName: string, cgroup: string | number): BpfLink { return new BpfLink(this.#obj.attachCgroup(progName, cgroup)) }
  attachNetns (progName: string, netnsFd: number): BpfLink { return new BpfLink(this.#obj.attachNetns(progName, netnsFd)) }
  /** An sk_msg program on a sockmap/sockhash, as a link pinned at pinPath (the pin is how it is found again). */
  attachSkMsg (progName: string, mapFd: number, pinPath: string): BpfLink { return new BpfLink(this.#obj.attachSkMsg(progName, mapFd, pinPath)) }
  close (): void { this.#obj.close() }
}

/** Closes an fd returned by the addon (a map fd from mapFd or openPinned). */
export function closeFd (fd: number): void { closeSync(fd) }
