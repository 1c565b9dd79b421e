import { readFileSync } from 'node:fs'
import { PATHS } from '../config/env'
import { Btf } from './btf'

// TWIN of the kernel types bpf/sk_msg.bpf.c declares (struct sock_common … sk_psock,
// reduced to the fields it reads) and of the kfunc it calls: the agent checks them
// against the running kernel's BTF before attaching the sockmap shortcut, and leaves
// the shortcut off (hops take TCP) on a kernel that lacks one. Why each read is safe,
// and on which kernels the layout was checked: docs/reliability.md, "The sockmap fast
// path". test/capture/sk-msg-fields.test.ts checks this list against the compiled
// object's own BTF, so a field added in C and not here fails the suite.

/** Struct → member paths (dot-separated) sk_msg.bpf.c reads. */
export const SK_MSG_FIELDS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  sock_common: ['skc_cookie.counter'],
  sock: ['__sk_common', 'sk_rcvbuf', 'sk_user_data'],
  inet_sock: ['sk'],
  inet_connection_sock: ['icsk_inet'],
  tcp_sock: ['inet_conn', 'copied_seq', 'write_seq'],
  sk_psock: ['msg_tot_len']
})

/** Kernel functions (kfuncs) sk_msg.bpf.c calls. */
export const SK_MSG_KFUNCS: readonly string[] = Object.freeze(['bpf_rdonly_cast'])

/** The running kernel's BTF. */
export const KERNEL_BTF = PATHS.kernelBtf

/** Why the shortcut cannot run on a kernel: what its BTF lacks, or why it could not be read. */
export interface SkMsgGap {
  /** "struct.path" of each missing field, "kfunc name" of each missing kfunc. */
  readonly missing: readonly string[]
  /** Set when the BTF could not be read or parsed at all. */
  readonly unreadable?: string
}

/** Answers by path: a kernel's BTF does not change while the process runs. */
const checked = new Map<string, SkMsgGap | null>()

/** Checks the BTF at `path` for everything sk_msg.bpf.c reads; null when nothing is missing. */
export function skMsgGap (path: string = KERNEL_BTF): SkMsgGap | null {
  if (!checked.has(path)) checked.set(path, check(path))
  return checked.get(path) as SkMsgGap | null
}

function check (path: string): SkMsgGap | null {
  let btf: Btf
  try {
    btf = new Btf(readFileSync(path))
  } catch (err) {
    return Object.freeze({ missing: [], unreadable: `${path}: ${(err as Error).message}` })
  }
  const missing: string[] = []
  for (const [struct, paths] of Object.entries(SK_MSG_FIELDS)) {
    for (const p of paths) if (!btf.hasMember(struct, p)) missing.push(`${struct}.${p}`)
  }
  for (const f of SK_MSG_KFUNCS) if (!btf.hasFunc(f)) missing.push(`kfunc ${f}`)
  return missing.length === 0 ? null : Object.freeze({ missing: Object.freeze(missing) })
}
