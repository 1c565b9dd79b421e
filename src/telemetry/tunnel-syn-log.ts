import type { Logger } from './logger'

// The SYNs the kernel drops on the tunnel port (src/tunnel-syn) never reach the agent,
// so they cannot be reported one by one like the refusals of src/telemetry/tunnel-refusals.ts:
// the kernel counts them, and this reads the count once a period and, while it grows,
// writes one warn line `msg: "tunnel SYNs dropped"` with `stage: "syn"`,
// `reason: "rate-limit"` and `dropped` (how many since the previous line). A SYN flood
// therefore shows as one line a second, whatever its rate; the count itself is in
// ferry_tunnel_refusals_total{side="server",stage="syn",reason="rate-limit"}.

export const SYN_DROP_LOG_PERIOD_MS = 1000

export interface SynDropLog {
  stop (): void
}

/** `read` gives the kernel's count of dropped SYNs (null when there is nothing to read). */
export function watchSynDrops (log: Logger, read: () => number | null, periodMs: number = SYN_DROP_LOG_PERIOD_MS): SynDropLog {
  let reported = read() ?? 0
  const timer = setInterval(() => {
    const now = read()
    if (now === null || now <= reported) return
    if (log.isLevelEnabled('warn')) log.warn({ side: 'server', stage: 'syn', reason: 'rate-limit', dropped: now - reported }, 'tunnel SYNs dropped')
    reported = now
  }, periodMs)
  timer.unref()
  return { stop: () => { clearInterval(timer) } }
}
