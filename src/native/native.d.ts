// Types of build/Release/ferry_native.node (native/*.cc). Arguments are positional
// and unchecked: only the facade in this folder calls the addon, after validating.
// Errors are instances of the class given to setErrorClass (FerryError).

export interface NativeProgramInfo {
  name: string
  section: string
  /** Borrowed: valid until the object is closed. */
  fd: number
}

export interface NativeLinkInfo {
  id: number
  progId: number
  /** enum bpf_link_type (BPF_LINK_TYPE_CGROUP = 3, BPF_LINK_TYPE_NETNS = 5). */
  type: number
  /** enum bpf_attach_type, for cgroup and netns links. */
  attachType?: number
  /** Cgroup links: the cgroup's id (its inode number); 0 once the cgroup is gone. */
  cgroupId?: bigint
  /** Netns links: the namespace's inode number; 0 once the namespace is gone. */
  netnsIno?: number
}

export interface NativeMapInfo {
  id: number
  /** enum bpf_map_type */
  type: number
  keySize: number
  valueSize: number
  maxEntries: number
  name: string
}

export declare class NativeBpfLink {
  private constructor ()
  /** bpf_link__open: the returned link remembers the pin path for unpin(). */
  static openPinned (path: string): NativeBpfLink
  /** -1 once closed. */
  readonly fd: number
  pin (path: string): void
  unpin (): void
  /** BPF_LINK_UPDATE to the program with this fd. */
  update (progFd: number): void
  info (): NativeLinkInfo
  /** BPF_LINK_DETACH: unhooks the program even while pins remain. */
  detach (): void
  /** Closes the fd; the program stays attached if a pin holds the link. */
  close (): void
}

export declare class NativeBpfObject {
  /** Opens and loads; maps pinned by name live under pinRoot ('' for an object that pins nothing); rodata: variable name → value. */
  constructor (path: string, pinRoot: string, rodata: Record<string, number>)
  programs (): NativeProgramInfo[]
  /** Borrowed: valid until close(). */
  progFd (name: string): number
  /** A new fd (dup) the caller owns and must close. */
  mapFd (name: string): number
  attachCgroup (progName: string, cgroup: string | number): NativeBpfLink
  attachNetns (progName: string, netnsFd: number): NativeBpfLink
  attachSkMsg (progName: string, mapFd: number, pinPath: string): NativeBpfLink
  close (): void
}

export declare class NativeFdWatch {
  /** Calls `onReadable` from the loop whenever fd is readable or hung up (level-triggered). */
  constructor (fd: number, onReadable: () => void)
  /** Stops watching; idempotent. */
  close (): void
}

export interface NativePeerCredentials { pid: number, uid: number, gid: number }

export type NativeErrorClass = new (code: string, message: string, opts: { errno?: string }) => Error

export interface NativeAddon {
  setErrorClass (cls: NativeErrorClass): void

  BpfObject: typeof NativeBpfObject
  BpfLink: typeof NativeBpfLink

  mapOpenPinned (path: string): number
  mapInfo (fd: number): NativeMapInfo
  mapUpdate (fd: number, key: Buffer, value: Buffer, flags: number): void
  mapLookup (fd: number, key: Buffer, valueSize: number): Buffer | null
  mapLookupAndDelete (fd: number, key: Buffer, valueSize: number): Buffer | null
  mapDelete (fd: number, key: Buffer): boolean
  mapNextKey (fd: number, key: Buffer | null, keySize: number): Buffer | null

  /** Mounts bpffs at path unless it is there; true if it mounted now. */
  ensureBpffs (path: string): boolean

  netnsOpen (path: string): number
  netnsCookie (nsFd: number): bigint
  /** Throws FERRY_ERR_NETNS when the namespace cannot be entered, FERRY_ERR_LISTEN when the socket cannot be bound or listen. */
  netnsListen (nsFd: number, family: 4 | 6, address: string, port: number, backlog: number, reusePort: boolean): number
  netnsSocket (nsFd: number, family: 4 | 6): number
  socketNetnsCookie (fd: number): bigint
  /** The local port a socket is bound to (getsockname). */
  socketPort (fd: number): number

  /**
   * A listening TCP socket in the calling thread's netns (SO_REUSEADDR): dualStack turns
   * IPV6_V6ONLY off for family 6; deferAcceptSeconds > 0 sets TCP_DEFER_ACCEPT;
   * filterProgFd >= 0 attaches that socket filter (SO_ATTACH_BPF). All before listen().
   * Throws FERRY_ERR_BPF_ATTACH when the filter is refused, FERRY_ERR_LISTEN otherwise.
   */
  /** SO_ATTACH_BPF on a socket made elsewhere (replaces its filter). */
  attachSocketFilter (fd: number, progFd: number): void
  tcpListen (family: 4 | 6, address: string, port: number, backlog: number, dualStack: boolean, deferAcceptSeconds: number, filterProgFd: number, reusePort: boolean): number

  /** A listening unix socket (non-blocking, close-on-exec) bound at path, chmod'ed to mode before listen(). */
  unixListen (path: string, seqpacket: boolean, backlog: number, mode: number): number
  /** A connected unix socket (non-blocking, close-on-exec); throws with errno ENOENT, ECONNREFUSED, EAGAIN… */
  unixConnect (path: string, seqpacket: boolean): number
  /** An accepted connection (non-blocking, close-on-exec), or -1 when none waits. */
  unixAccept (fd: number): number
  /** SO_PEERCRED: who connected. */
  peerCredentials (fd: number): NativePeerCredentials

  /** fcntl(F_DUPFD_CLOEXEC). */
  dupFd (fd: number): number
  /** SCM_MAX_FD: the most fds one message carries. */
  readonly SCM_MAX_FD: number
  /** One message with these fds (at most SCM_MAX_FD); returns the bytes sent. Never blocks (EAGAIN throws). */
  sendFds (fd: number, payload: Buffer, fds: number[]): number
  /** One message: null when none waits, an empty payload without fds once the peer closed. Throws (and closes what arrived) on truncation. */
  recvFds (fd: number, maxBytes: number, maxFds: number): { payload: Buffer, fds: number[] } | null

  FdWatch: typeof NativeFdWatch
}
