import t from 'tap'
import { GrpcMessageCounter } from '../../src/telemetry/grpc-messages'

// gRPC's length-prefixed messages counted from body chunks cut anywhere.

function message (bodyBytes: number): Buffer {
  const m = Buffer.alloc(5 + bodyBytes, 0x61)
  m[0] = 0
  m.writeUInt32BE(bodyBytes, 1)
  return m
}

t.test('messages are counted whatever the chunking: whole, byte by byte, split inside prefixes and bodies', async (t) => {
  const stream = Buffer.concat([message(3), message(0), message(70_000), message(1), message(256)])
  const whole = new GrpcMessageCounter()
  whole.push(stream)
  t.equal(whole.messages, 5)
  const bytes = new GrpcMessageCounter()
  for (let i = 0; i < stream.length; i++) bytes.push(stream.subarray(i, i + 1))
  t.equal(bytes.messages, 5, 'one byte at a time (a length split across chunks)')
  const odd = new GrpcMessageCounter()
  for (let i = 0; i < stream.length; i += 7) odd.push(stream.subarray(i, i + 7))
  t.equal(odd.messages, 5)
})

t.test('a message counts once its prefix has arrived; its body bytes are never taken for prefixes', async (t) => {
  const c = new GrpcMessageCounter()
  const m = message(10)
  c.push(m.subarray(0, 4))
  t.equal(c.messages, 0, 'prefix incomplete')
  c.push(m.subarray(4, 6))
  t.equal(c.messages, 1, 'prefix complete, body pending')
  // A body of bytes that would read as prefixes if the length were ignored.
  const tricky = Buffer.alloc(5 + 12, 0)
  tricky.writeUInt32BE(12, 1)
  c.push(m.subarray(6))
  c.push(tricky)
  t.equal(c.messages, 2)
})
