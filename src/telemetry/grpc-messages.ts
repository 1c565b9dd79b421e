// Counts gRPC messages in one direction of a call's body, as it streams by in chunks of
// any size. gRPC's framing over HTTP/2 (PROTOCOL-HTTP2.md, Length-Prefixed-Message): each
// message is a 1-byte compressed flag, a 4-byte big-endian length, then that many bytes.
// A message counts once its 5-byte prefix has arrived; the bytes are not kept, so a
// chunk costs one step per prefix byte and one per message, whatever its size.

const PREFIX_BYTES = 5

export class GrpcMessageCounter {
  messages = 0
  /** Bytes of the current prefix read so far (0-4), or PREFIX_BYTES while in a message body. */
  private prefixRead = 0
  private length = 0
  private bodyLeft = 0

  push (chunk: Uint8Array): void {
    let i = 0
    const n = chunk.length
    while (i < n) {
      if (this.bodyLeft > 0) {
        const take = Math.min(this.bodyLeft, n - i)
        this.bodyLeft -= take
        i += take
        continue
      }
      // Byte 0 is the compressed flag; bytes 1-4 the length.
      if (this.prefixRead > 0) this.length = this.length * 256 + chunk[i]!
      i++
      if (++this.prefixRead === PREFIX_BYTES) {
        this.messages++
        this.bodyLeft = this.length
        this.prefixRead = 0
        this.length = 0
      }
    }
  }
}

/** A gRPC call's two directions: messages sent by the client, and by the server. */
export class GrpcMessages {
  readonly request = new GrpcMessageCounter()
  readonly response = new GrpcMessageCounter()
}
