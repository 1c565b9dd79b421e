// A V8 .cpuprofile (node --cpu-prof) summed by function: self time per
// "function (file:line)", the top N, as a share of all samples. Pure.

interface ProfileNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string, readonly url: string, readonly lineNumber: number }
  readonly children?: readonly number[]
}

export interface CpuProfile {
  /** Monotonic clock, µs (process.hrtime's clock): when the first sample's delta starts. */
  readonly startTime?: number
  readonly nodes: readonly ProfileNode[]
  readonly samples: readonly number[]
  readonly timeDeltas: readonly number[]
}

export interface HotFunction {
  readonly name: string
  readonly selfMs: number
  readonly share: number
}

function frameName (n: ProfileNode): string {
  const f = n.callFrame
  const file = f.url === '' ? '' : f.url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules|dist)\//, '$1/')
  return `${f.functionName === '' ? '(anonymous)' : f.functionName}${file === '' ? '' : ` ${file}:${f.lineNumber + 1}`}`
}

export function hotFunctions (p: CpuProfile, top = 25, window: { readonly fromUs: number, readonly toUs: number } | null = null): HotFunction[] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<string, number>()
  let total = 0
  let at = p.startTime ?? 0
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i])
    const dt = p.timeDeltas[i] ?? 0
    at += dt
    // Only the samples inside `window` (monotonic µs), when one is given.
    if (window !== null && (at < window.fromUs || at > window.toUs)) continue
    if (node === undefined) continue
    total += dt
    const name = frameName(node)
    selfUs.set(name, (selfUs.get(name) ?? 0) + dt)
  }
  return [...selfUs.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
    .map(([name, us]) => ({ name, selfMs: us / 1000, share: total === 0 ? 0 : us / total }))
}
