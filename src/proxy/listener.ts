import { createServer, type Server, type Socket } from 'node:net'

// Capture stage: accept connections on a listener. The agent hands us listening fds
// the addon created inside a pod's namespace; tests hand us 127.0.0.1 port 0.
// Sockets are half-open capable (the relay forwards FINs one way at a time) and start
// paused, so no byte is read before an upstream exists to take it.

export type ListenTarget = { readonly fd: number } | { readonly host: string, readonly port: number }

export type ConnectionHandler = (socket: Socket) => void

export async function serve (target: ListenTarget, handler: ConnectionHandler, onError: (err: Error) => void): Promise<Server> {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, handler)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(target, () => {
      server.off('error', reject)
      resolve()
    })
  })
  // After listening, errors are accept failures (EMFILE, ...): report, keep serving.
  server.on('error', onError)
  return server
}

/**
 * Stops accepting at once (the listening socket is closed now). Connections already
 * accepted carry on until they end: nothing here waits for them, so unenrolling a pod
 * or stopping the agent never hangs on a long-lived connection.
 */
export async function closeServer (server: Server): Promise<void> {
  if (server.listening) server.close()
}
