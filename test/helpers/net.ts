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
