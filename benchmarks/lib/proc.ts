import { readFileSync } from 'node:fs'

// What the proxies cost, read from /proc: CPU time (utime + stime of every thread, in
// clock ticks) and resident memory. Only the proxy processes are measured, never the
// load generator or the servers.

/** USER_HZ: Linux reports /proc/PID/stat times in 1/100 s on every architecture Ferry runs on. */
export const CLOCK_TICKS_PER_SECOND = 100

/** utime + stime of a process in seconds (all its threads), from the fields after the comm's ')'. */
export function cpuSeconds (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND
}

export function rssBytes (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

export function totalCpuSeconds (pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
}

export function totalRssBytes (pids: readonly number[]): number {
  return pids.reduce((sum, pid) => sum + rssBytes(pid), 0)
}

/** Samples the RSS of `pids` every `intervalMs` until stopped; returns the peak. */
export function rssSampler (pids: readonly number[], intervalMs = 200): { stop: () => number } {
  let peak = totalRssBytes(pids)
  const timer = setInterval(() => { try { peak = Math.max(peak, totalRssBytes(pids)) } catch {} }, intervalMs)
  return { stop: () => { clearInterval(timer); try { peak = Math.max(peak, totalRssBytes(pids)) } catch {} return peak } }
}
