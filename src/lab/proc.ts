import { readFileSync } from 'node:fs'

// Telling whether a recorded pid is still the process we started (pids are reused).

/** Start time of a process in clock ticks since boot (/proc/PID/stat field 22), or null if it is gone. */
export function procStartTime (pid: number): number | null {
  const fields = statFields(pid)
  return fields === null ? null : Number(fields[19])
}

/** True when `pid` is a live process (not a zombie) that started at `startTime` (clock ticks), when given. */
export function isRunning (pid: number, startTime: number | null = null): boolean {
  const fields = statFields(pid)
  if (fields === null || fields[0] === 'Z' || fields[0] === 'X') return false
  return startTime === null || Number(fields[19]) === startTime
}

/** /proc/PID/stat from field 3 (the state) on, or null if the process is gone. */
function statFields (pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** The process's cgroup v2 path relative to the cgroup2 root ("/ferry-lab-x/…"), or null if it is gone. */
export function procCgroup (pid: number): string | null {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => l.startsWith('0::'))
    return line === undefined ? null : line.slice(3)
  } catch {
    return null
  }
}

/** True when `pid` is alive and a member of `cgroupDir` (absolute, under `cgroup2Root`). */
export function isAliveIn (pid: number, cgroupDir: string, cgroup2Root: string): boolean {
  const cg = procCgroup(pid)
  return cg !== null && cgroupDir === cgroup2Root + cg
}
