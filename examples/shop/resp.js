'use strict'
// A minimal Redis client: one connection, commands pipelined in order, RESP2 replies
// (simple string, error, integer, bulk string, array). Reconnects on the next command
// after the connection drops. Core modules only.
const net = require('node:net')

const COMMAND_TIMEOUT_MS = 3000

class Redis {
  constructor (host, port) {
    this.host = host
    this.port = port
    this.socket = null
    this.buffer = Buffer.alloc(0)
    this.pending = [] // { resolve, reject, timer } in send order
  }

  command (...args) {
    const socket = this.connect()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new Error(`redis ${args[0]}: no answer in ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS)
      this.pending.push({ resolve, reject, timer })
      socket.write(encode(args))
    })
  }

  connect () {
    if (this.socket !== null) return this.socket
    const socket = net.connect({ host: this.host, port: this.port })
    socket.on('data', (chunk) => { this.buffer = Buffer.concat([this.buffer, chunk]); this.drain() })
    socket.on('error', (err) => this.fail(err))
    socket.on('close', () => this.fail(new Error('redis connection closed')))
    this.socket = socket
    return socket
  }

  drain () {
    for (;;) {
      const parsed = parse(this.buffer, 0)
      if (parsed === null) return
      this.buffer = this.buffer.subarray(parsed.end)
      const p = this.pending.shift()
      if (p === undefined) continue
      clearTimeout(p.timer)
      if (parsed.value instanceof Error) p.reject(parsed.value)
      else p.resolve(parsed.value)
    }
  }

  fail (err) {
    if (this.socket !== null) this.socket.destroy()
    this.socket = null
    this.buffer = Buffer.alloc(0)
    for (const p of this.pending.splice(0)) { clearTimeout(p.timer); p.reject(err) }
  }
}

function encode (args) {
  let out = `*${args.length}\r\n`
  for (const a of args) {
    const s = String(a)
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`
  }
  return out
}

/** Parses one reply at `at`: { value, end }, or null when more bytes are needed. */
function parse (buf, at) {
  const eol = buf.indexOf('\r\n', at)
  if (eol < 0) return null
  const type = String.fromCharCode(buf[at])
  const line = buf.toString('utf8', at + 1, eol)
  const next = eol + 2
  switch (type) {
    case '+': return { value: line, end: next }
    case '-': return { value: new Error(line), end: next }
    case ':': return { value: Number(line), end: next }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, end: next }
      if (buf.length < next + len + 2) return null
      return { value: buf.toString('utf8', next, next + len), end: next + len + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, end: next }
      const items = []
      let end = next
      for (let i = 0; i < n; i++) {
        const item = parse(buf, end)
        if (item === null) return null
        items.push(item.value)
        end = item.end
      }
      return { value: items, end }
    }
    default: throw new Error(`redis: unexpected reply type ${JSON.stringify(type)}`)
  }
}

module.exports = { Redis, encode, parse }
