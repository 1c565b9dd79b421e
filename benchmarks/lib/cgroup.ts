import { readFileSync } from 'node:fs'

// Where cgroup v2 is mounted: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
// hybrid ones (like the lab's CI machine). The agent's src/config/env.ts decides the same.

export function cgroup2Root (): string {
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2')
  if (line === undefined) throw new Error('no cgroup2 mount')
  return line.split(' ')[1]
}
