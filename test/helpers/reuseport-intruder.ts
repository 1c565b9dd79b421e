import { spawn } from 'node:child_process'

// A real process that tries to take connections meant for Ferry's listeners: python3,
// running as root like the test, binds each given address with SO_REUSEADDR and
// SO_REUSEPORT — joining the reuseport group of Ferry's listeners on the same address,
// or sitting on a more specific one — listens, and answers every connection it accepts
// with "intruder", printing one line per accept. It exits by itself after 120 s.

const SCRIPT = `
import selectors, socket, sys, time
sel = selectors.DefaultSelector()
for spec in sys.argv[1:]:
    addr, port = spec.rsplit(':', 1)
    v6 = ':' in addr
    s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if v6:
        # Ferry's [::1] listeners are V6ONLY, its [::] tunnel listener dual stack: match them.
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if addr == '::' else 1)
    s.bind((addr, int(port)))
    s.listen(512)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
print('listening', flush=True)
deadline = time.time() + 120
while time.time() < deadline:
    for key, _ in sel.select(timeout=1):
        try:
            c, peer = key.fileobj.accept()
        except BlockingIOError:
            continue
        print('accepted', peer[0], flush=True)
        c.setblocking(True)
        try:
            c.sendall(b'intruder')
        except OSError:
            pass
        c.close()
`

export interface Intruder {
  /** Connections it accepted so far. */
  readonly accepted: () => number
}

/**
 * Starts the intruder with `prefix` before its argv (e.g. entering a pod's cgroup and
 * netns; [] to run where the test runs), bound to `addresses`, each address:port with the
 * last colon before the port ("127.0.0.1:15006", "::1:15006", ":::15008" for [::]).
 * Resolves once every socket listens; rejects with python's error if a bind fails.
 * Killed at teardown.
 */
export async function startIntruder (t: { teardown: (fn: () => unknown) => void }, prefix: readonly string[], addresses: readonly string[]): Promise<Intruder> {
  const argv = [...prefix, 'python3', '-c', SCRIPT, ...addresses]
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let accepted = 0
  let stderr = ''
  let out = ''
  child.stderr.on('data', (d: Buffer) => { stderr += String(d) })
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += String(d)
      const lines = out.split('\n')
      out = lines.pop() ?? ''
      for (const line of lines) {
        if (line === 'listening') resolve()
        else if (line.startsWith('accepted')) accepted++
      }
    })
    child.once('exit', (code) => { reject(new Error(`intruder exited (${String(code)}) before listening: ${stderr}`)) })
    child.once('error', reject)
  })
  return { accepted: () => accepted }
}

/** `n` calls of `one(i)`, `parallel` at a time: what each returned, by index. */
export async function inParallel (n: number, parallel: number, one: (i: number) => Promise<string>): Promise<string[]> {
  const out: string[] = []
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      out[i] = await one(i)
    }
  }
  await Promise.all(Array.from({ length: parallel }, lane))
  return out
}

/** How many times each answer came. */
export function tally (answers: readonly string[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const a of answers) m.set(a, (m.get(a) ?? 0) + 1)
  return m
}
