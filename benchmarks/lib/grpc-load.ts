import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { H2Spec } from './h2load'

// gRPC unary calls as h2load makes them: HTTP/2 with prior knowledge, POST to the Echo
// service's Unary method (test/fixtures/apps/echo.proto) with the same request body every
// time, framed as gRPC frames it (a 5-byte prefix: not compressed, then the length). The
// server answers 200 with the reply and `grpc-status` in the trailers; h2load counts the
// 200s (it does not read trailers: test/benchmarks/l7.test.ts checks once, on loopback,
// that the call succeeds).

export const UNARY_PATH = '/ferry.fixtures.Echo/Unary'
export const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'] as const

/** An EchoRequest { message } (field 1, length-delimited), as protobuf encodes it. */
export function echoRequest (message: string): Buffer {
  const text = Buffer.from(message, 'utf8')
  if (text.length > 127) throw new Error('echoRequest: a message under 128 bytes (one-byte length)')
  return Buffer.concat([Buffer.from([0x0a, text.length]), text])
}

/** A gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, the bytes. */
export function grpcFrame (message: Buffer): Buffer {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

/** Writes the request body to `dir` and returns h2load's HTTP/2 settings for unary calls, `streams` in flight per connection. */
export function unaryLoad (dir: string, streams: number): H2Spec {
  const dataFile = join(dir, 'grpc-unary-request.bin')
  writeFileSync(dataFile, grpcFrame(echoRequest('hello')))
  return { streams, headers: GRPC_HEADERS, dataFile }
}
