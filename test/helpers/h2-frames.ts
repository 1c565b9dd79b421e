import { connect, type Socket } from 'node:net'

// Raw HTTP/2 frames for tests that must misbehave where Node's client will not (a header
// block left open, streams beyond the peer's limit). RFC 9113 §4.1 framing; the request
// headers are HPACK static-table entries plus a literal :authority.

export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
export const FRAME = { HEADERS: 0x1, SETTINGS: 0x4, CONTINUATION: 0x9 } as const
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const

export function h2Frame (type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(streamId, 5)
  return Buffer.concat([head, payload])
}

/** `GET http://x/`: :method GET, :scheme http, :path / (static indexes 2, 6, 4), :authority "x" (literal, index 1). */
export const GET_HEADER_BLOCK = Buffer.from([0x82, 0x86, 0x84, 0x41, 0x01, 0x78])

/** The client preface, an empty SETTINGS and the ACK of the server's SETTINGS. */
export function h2Hello (): Buffer {
  return Buffer.concat([H2_PREFACE, h2Frame(FRAME.SETTINGS, 0, 0), h2Frame(FRAME.SETTINGS, FLAG.ACK, 0)])
}

/** A raw connection; `closed` resolves when the peer (or the test) closes it. */
export function rawH2 (port: number): { socket: Socket, closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.on('data', () => {})
  const closed = new Promise<void>((resolve) => { socket.on('close', () => { resolve() }) })
  return { socket, closed }
}
