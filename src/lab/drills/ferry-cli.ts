import { execFile } from 'node:child_process'
import { defaultFerryArgv } from '../spawn'

// The `ferry` command run as a user runs it, for drills that check what it shows.

export async function ferryJson (args: readonly string[], timeoutMs = 30_000): Promise<{ code: number, json: any, stderr: string }> {
  const [node, ...rest] = defaultFerryArgv()
  return await new Promise((resolve) => {
    execFile(node, [...rest, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? (err as unknown as { code: number }).code : 1
      let json: any = null
      try { json = JSON.parse(stdout) } catch {}
      resolve({ code, json, stderr })
    })
  })
}
