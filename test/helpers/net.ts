import { connect, type Socket } from 'node:net'

// Plain TCP for tests: a client connection and reading one to its end.

/** Connects over TCP (127.0.0.1 unless `host`), half-open capable; resolves once connected, rejects on a connect error. */
export async function dial (port: number, opts: { host?: string, localAddress?: string } = {}): Promise<Socket> {
  const s = connect({ host: opts.host ?? '127.0.0.1', port, allowHalfOpen: true, ...(opts.localAddress === undefined ? {} : { localAddress: opts.localAddress }) })
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject) })
  return s
}

export interface Drained { data: Buffer, ended: 'end' | 'error', code?: string }

/** Reads a stream to its end or error (bounded); resolves with the bytes and how it ended. */
export async function drain (s: NodeJS.ReadableStream & { readableEnded?: boolean }, ms = 5000): Promise<Drained> {
  const chunks: Buffer[] = []
  // A stream with nothing buffered emits 'end' even when nobody reads it: it may be over already.
  if (s.readableEnded === true) return { data: Buffer.alloc(0), ended: 'end' }
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('drain timed out')) }, ms)
    s.on('data', (c: Buffer) => chunks.push(c))
    s.once('end', () => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks), ended: 'end' }) })
    s.once('error', (err: NodeJS.ErrnoException) => { clearTimeout(timer); resolve({ data: Buffer.concat(chunks), ended: 'error', code: err.code }) })
  })
}

/**
 * A loopback port whose connects never complete: a listener with a backlog of 0 that never
 * accepts, its one queue place taken, so the kernel drops further SYNs (the client keeps
 * retrying: its connect hangs). Held by a python3 process, as Node accepts every
 * connection it listens for; `close` ends it.
 */
export async function unansweredPort (): Promise<{ port: number, close: () => void }> {
  const { spawn } = await import('node:child_process')
  const script = [
    'import socket, sys',
    "l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(0)",
    'fill = []',
    'for _ in range(2):',
    '    c = socket.socket(); c.setblocking(False)',
    '    try: c.connect(l.getsockname())',
    '    except BlockingIOError: pass',
    '    fill.append(c)',
    'print(l.getsockname()[1], flush=True)',
    'sys.stdin.read()'
  ].join('\n')
  const p = spawn('python3', ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    p.stdout.on('data', (c: Buffer) => { out += String(c); if (out.includes('\n')) resolve(Number(out.trim())) })
    p.once('exit', () => { reject(new Error('python3 listener exited')) })
  })
  return { port, close: () => { p.stdin.end(); p.kill() } }
}
