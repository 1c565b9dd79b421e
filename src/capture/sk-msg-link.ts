import { existsSync } from 'node:fs'
import { BpfLink } from '../native'
import type { FerryErrorCode } from '../errors'
import type { Logger } from '../telemetry/logger'
import { retireLink } from './pinned-link'
import type { PinLayout } from './pins'
import { SK_MSG, type Programs } from './programs'
import type { SkMsgGap } from './sk-msg-fields'

// The sockmap shortcut's one link (sk_msg on ferry_socks), node-wide: attached when the
// kernel has everything bpf/sk_msg.bpf.c reads, else off with a stable reason. It is an
// optimization: off, every pod <-> proxy hop takes TCP and nothing else changes.

/** Whether the shortcut is on and, if not, why. */
export interface SockmapStatus {
  readonly enabled: boolean
  /** FERRY_ERR_SOCKMAP_BTF (the kernel's BTF lacks a field it reads), FERRY_ERR_BPF_LOAD, FERRY_ERR_BPF_ATTACH. */
  readonly code?: FerryErrorCode
  readonly reason?: string
  /** With FERRY_ERR_SOCKMAP_BTF: what the BTF lacks ("struct.field", "kfunc name"). */
  readonly missing?: readonly string[]
}

export interface Shortcut { readonly link: BpfLink | undefined, readonly status: SockmapStatus }

/** Attaches (or adopts) the sk_msg link, or leaves the shortcut off and says why (logged once, warn). */
export function startShortcut (programs: Programs, pins: PinLayout, gap: SkMsgGap | null, btfPath: string, log: Logger): Shortcut {
  const pinPath = pins.nodeLinkPath(SK_MSG.prog)
  if (gap !== null) {
    // A link an earlier agent pinned would go on running its program: the shortcut is off means off.
    if (existsSync(pinPath)) retireLink(BpfLink.openPinned(pinPath), log)
    const reason = gap.unreadable !== undefined ? `cannot read the kernel's BTF (${gap.unreadable})` : `the kernel's BTF (${btfPath}) lacks ${gap.missing.join(', ')}`
    log.warn({ code: 'FERRY_ERR_SOCKMAP_BTF', btf: btfPath, missing: gap.missing }, `sockmap shortcut off: ${reason}; pod hops take TCP`)
    return off('FERRY_ERR_SOCKMAP_BTF', reason, gap.missing)
  }
  const missing = programs.unavailable.get(SK_MSG.object)
  if (missing !== undefined) {
    log.warn({ err: missing, code: 'FERRY_ERR_BPF_LOAD' }, 'sockmap shortcut off: sk_msg does not load on this kernel; pod hops take TCP')
    return off('FERRY_ERR_BPF_LOAD', missing.message.split('\n')[0])
  }
  try {
    return { link: ensureSkMsgLink(programs, pinPath, log), status: Object.freeze({ enabled: true }) }
  } catch (err) {
    log.warn({ err, code: 'FERRY_ERR_BPF_ATTACH' }, 'sockmap shortcut off: cannot attach sk_msg; pod hops take TCP')
    return off('FERRY_ERR_BPF_ATTACH', (err as Error).message)
  }
}

function off (code: FerryErrorCode, reason: string, missing?: readonly string[]): Shortcut {
  return { link: undefined, status: Object.freeze({ enabled: false, code, reason, ...(missing !== undefined ? { missing } : {}) }) }
}

/**
 * The sk_msg link on ferry_socks, pinned so it outlives the agent: reopened and
 * switched to this agent's program in place when an earlier agent left it, else made.
 */
function ensureSkMsgLink (programs: Programs, pinPath: string, log: Logger): BpfLink {
  if (existsSync(pinPath)) {
    const link = BpfLink.openPinned(pinPath)
    try {
      link.update(programs.skMsgProgFd())
      log.debug({ link: link.info().id }, 'reused pinned sk_msg link')
      return link
    } catch (err) {
      log.info({ err }, 'pinned sk_msg link cannot take this program; replacing it')
      link.unpin()
      link.close()
    }
  }
  return programs.attachSkMsg(pinPath)
}
