import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

// Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones (like the lab's CI machine). The agent's src/config/env.ts decides the same.
// And CPU-capped cgroups for the flood benchmark's attackers.

export function cgroup2Root (): string {
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2')
  if (line === undefined) throw new Error('no cgroup2 mount')
  return line.split(' ')[1]
}

/** A cgroup whose processes together get at most `cpus` of CPU time; rmdir'd by remove() (once empty). */
export interface CpuCappedCgroup {
  /** Write a pid here (`echo $$ > …`) to put a process (and its future children) in it. */
  readonly procsFile: string
  remove (): void
}

/**
 * Makes a CPU-capped cgroup named `name`: with cgroup v2's `cpu` controller where the v2
 * root offers it (cpu.max), else in the v1 `cpu` hierarchy of a hybrid host
 * (cpu.cfs_quota_us), where this machine has the controller.
 */
export function cpuCappedCgroup (name: string, cpus: number): CpuCappedCgroup {
  const periodUs = 100_000
  const quotaUs = Math.max(1000, Math.round(cpus * periodUs))
  const v2 = cgroup2Root()
  const v2Controllers = existsSync(join(v2, 'cgroup.controllers')) ? readFileSync(join(v2, 'cgroup.controllers'), 'utf8').split(/\s+/) : []
  let dir: string
  if (v2Controllers.includes('cpu')) {
    const subtree = readFileSync(join(v2, 'cgroup.subtree_control'), 'utf8').split(/\s+/)
    if (!subtree.includes('cpu')) writeFileSync(join(v2, 'cgroup.subtree_control'), '+cpu')
    dir = join(v2, name)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'cpu.max'), `${quotaUs} ${periodUs}`)
  } else {
    const v1 = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).find((f) => f[2] === 'cgroup' && (f[3] ?? '').split(',').includes('cpu'))
    if (v1 === undefined) throw new Error('no cgroup cpu controller (v2 cpu.max or a v1 cpu hierarchy)')
    dir = join(v1[1] as string, name)
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, 'cpu.cfs_period_us'), String(periodUs))
    writeFileSync(join(dir, 'cpu.cfs_quota_us'), String(quotaUs))
  }
  return {
    procsFile: join(dir, 'cgroup.procs'),
    remove: () => { try { rmdirSync(dir) } catch {} }
  }
}
