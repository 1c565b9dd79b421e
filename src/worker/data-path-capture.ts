import { BpfMap } from '../native'
import { dstCodec, origKeyCodec, sockKeyCodec, spliceCodec, u64Codec, type SockKey } from '../capture/map-layout'
import type { CaptureHandle } from '../agent/platform'

// What a data-path worker needs of capture: the original destinations sockops filed,
// and the sockmap shortcuts. The maps are the main thread's (src/capture/capture.ts);
// a worker thread reads and writes them through the same fds (an fd is the process's,
// whatever thread uses it) and never closes them.

export type DataPathCapture = Pick<CaptureHandle, 'originalDst' | 'addHopEnd' | 'splice' | 'unsplice'>

/** The fds of the maps the data path uses, and whether the sk_msg program is attached. */
export interface DataPathMapFds {
  readonly origDst: number
  readonly socks: number
  readonly splice: number
  readonly skMsg: boolean
}

/** The data path's capture over the main thread's map fds (a worker thread's view). */
export function dataPathCapture (fds: DataPathMapFds): DataPathCapture {
  const origDst = new BpfMap(fds.origDst, origKeyCodec, dstCodec)
  const socks = new BpfMap(fds.socks, sockKeyCodec, u64Codec)
  const splice = new BpfMap(fds.splice, sockKeyCodec, spliceCodec)
  return {
    originalDst (netnsCookie, family, port) {
      const dst = origDst.take({ netnsCookie, family, port })
      return dst === null ? null : { address: dst.address, port: dst.port }
    },
    addHopEnd (fd, key) {
      if (!fds.skMsg) return false
      try {
        socks.set(key as SockKey, BigInt(fd), 'noexist')
      } catch {
        return false
      }
      // Reading the entry back gives the socket its cookie, without which sk_msg never publishes this end.
      socks.get(key as SockKey)
      return true
    },
    splice (a, b) {
      if (!fds.skMsg) return false
      try {
        splice.set(a as SockKey, { to: b as SockKey, bytes: 0n }, 'noexist')
        try {
          splice.set(b as SockKey, { to: a as SockKey, bytes: 0n }, 'noexist')
        } catch (err) {
          splice.delete(a as SockKey)
          throw err
        }
        return true
      } catch {
        return false
      }
    },
    unsplice (a, b) {
      const fromA = splice.take(a as SockKey)?.bytes ?? 0n
      const fromB = splice.take(b as SockKey)?.bytes ?? 0n
      return { fromA: Number(fromA), fromB: Number(fromB) }
    }
  }
}
