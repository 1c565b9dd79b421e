import type { CaOutageResult, Sample } from '../../src/lab/drills/ca-outage'

// The ca-outage soak's report, in Markdown: what held, the timeline, and one row per
// minute of the load (requests, failures, renewal failures, earliest expiry, agent RSS).

const MINUTE_MS = 60_000

export function formatCaOutageReport (r: CaOutageResult, o: { lifetimeMs: number, rate: number }): string {
  const t = r.timeline
  const at = (ms: number | null): string => ms === null ? '—' : `${((ms - t.loadStartedAt) / 60_000).toFixed(2)} min`
  const nodes = Object.keys(r.renewalFailures.atStop)
  const counted = nodes.map((n) => `${n} ${String((r.renewalFailures.atRecovery[n] ?? 0) - (r.renewalFailures.atStop[n] ?? 0))}`).join(', ')
  const loads = r.samples.map((s) => s.loadavg1)
  const lines = [
    `# CA outage soak (${new Date(t.loadStartedAt).toISOString()})`,
    '',
    `**${r.held ? 'HELD' : 'FAILED'}**${r.problems.length === 0 ? '' : `: ${r.problems.join('; ')}`}`,
    '',
    `- certificates: ${o.lifetimeMs / 60_000} min lifetime, renewal due at half; load: ${o.rate} requests/s from node1's client to node2's server, a new connection every 20 requests`,
    `- requests: ${r.load.requests}, failed: ${r.load.failures}`,
    `- controller stopped at ${at(t.stoppedAt)} (first renewal due at ${at(t.firstRenewalDueAt)}, last at ${at(t.lastRenewalDueAt)}), back at ${at(t.returnedAt)} (down ${((t.returnedAt - t.stoppedAt) / 60_000).toFixed(2)} min); earliest expiry at ${at(t.earliestExpiryAt)}`,
    `- renewal failures counted from the controller's stop to the renewals (ferry_certificate_renewal_failures_total): ${counted}; after recovery: ${nodes.map((n) => `${n} +${String((r.renewalFailures.atEnd[n] ?? 0) - (r.renewalFailures.atRecovery[n] ?? 0))}`).join(', ')}`,
    `- every certificate renewed ${r.recoverySeconds === null ? 'NEVER' : `${r.recoverySeconds.toFixed(1)} s`} after the controller's return; agents restarted: ${JSON.stringify(r.agentPids.before) === JSON.stringify(r.agentPids.after) ? 'none' : 'YES'}`,
    `- configuration streams (--kubernetes-api): connected at the stop ${JSON.stringify(r.configStream.atStop)}, at the return ${JSON.stringify(r.configStream.atReturn)}, at the end ${JSON.stringify(r.configStream.atEnd)}; all connected again ${r.streamReconnectSeconds === null ? '—' : `${r.streamReconnectSeconds.toFixed(1)} s`} after the controller's return`,
    `- certificates before → after: ${nodes.map((n) => (r.before[n] ?? []).map((c) => `${c.spiffeId} ${String(c.serial)} (notAfter ${String(c.notAfter)}) → ${String((r.after[n] ?? []).find((x) => x.spiffeId === c.spiffeId)?.serial)} (notAfter ${String((r.after[n] ?? []).find((x) => x.spiffeId === c.spiffeId)?.notAfter)})`).join('; ')).join('; ')}`,
    `- machine load (1-min average) during the run: ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)}`,
    '',
    `| minute | controller | requests | failed | renewal failures (total, ${nodes.join(' + ')}) | earliest expiry (s) | agent RSS MB (${nodes.join(', ')}) | load avg |`,
    '|---|---|---|---|---|---|---|---|',
    ...perMinute(r.samples, t.loadStartedAt, nodes)
  ]
  return lines.join('\n') + '\n'
}

function perMinute (samples: readonly Sample[], start: number, nodes: readonly string[]): string[] {
  const rows: string[] = []
  let prev = { requests: 0, failures: 0 }
  const last = samples.length === 0 ? start : samples[samples.length - 1].at
  for (let m = 0; start + m * MINUTE_MS <= last; m++) {
    const inMinute = samples.filter((s) => s.at >= start + m * MINUTE_MS && s.at < start + (m + 1) * MINUTE_MS)
    if (inMinute.length === 0) continue
    const end = inMinute[inMinute.length - 1]
    const node = (name: string): Sample['nodes'][number] | undefined => end.nodes.find((n) => n.node === name)
    const failures = nodes.map((n) => node(n)?.renewalFailures ?? 0)
    const expiry = nodes.map((n) => node(n)?.earliestExpirySeconds).filter((x): x is number => x !== null && x !== undefined)
    const down = inMinute.some((s) => s.controller === 'down')
    rows.push(`| ${m + 1} | ${down ? (inMinute.every((s) => s.controller === 'down') ? 'down' : 'up/down') : 'up'} | ${end.requests - prev.requests} | ${end.failures - prev.failures} | ${failures.reduce((a, b) => a + b, 0)} (${failures.join(' + ')}) | ${expiry.length === 0 ? '—' : Math.min(...expiry)} | ${nodes.map((n) => ((node(n)?.rssBytes ?? 0) / 1048576).toFixed(0)).join(', ')} | ${end.loadavg1.toFixed(1)} |`)
    prev = { requests: end.requests, failures: end.failures }
  }
  return rows
}
