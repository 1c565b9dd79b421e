// Tunnel timings, limits and HTTP/2 flow-control sizes. Ports live in src/config/env.ts
// (PORTS.tunnel = 15008). docs/tunnel.md explains each value.

const KiB = 1024
const MiB = 1024 * KiB

export const TUNNEL_DEFAULTS = Object.freeze({
  /** TCP accept → TLS handshake done (server). */
  handshakeTimeoutMs: 10_000,
  /** TCP accept → the client's first byte (server). A client that sends nothing is reset after this. */
  firstByteTimeoutMs: 3_000,
  /**
   * The tunnel listener's backlog: its accept queue, and its SYN queue, which holds the
   * connections TCP_DEFER_ACCEPT keeps from accept() (when it is full, SYN cookies take
   * over and bypass the deferral). The kernel caps it at net.core.somaxconn (4096 by default).
   */
  listenBacklog: 4096,
  /**
   * TCP_DEFER_ACCEPT on the agent's kernel-guarded listener (src/tunnel-syn): a connection
   * that sends nothing stays in the kernel this long before it is accepted (and then has
   * firstByteTimeoutMs); one that sends is accepted with its first bytes.
   */
  deferAcceptSeconds: 3,
  /** Connections accepted and not yet verified, node-wide (the agent lowers it to a share of its fd limit). */
  pendingHandshakesMax: 1024,
  /** TLS handshakes per second per source address, on average (a peer pool dials one session per identity pair)… */
  handshakesPerSourcePerSecond: 32,
  /** …and at once. */
  handshakesPerSourceBurst: 128,
  /** Buckets of the per-source handshake table (4 bytes each, shared by the node's workers). */
  sourceTableSize: 16_384,
  /** open(): TCP connect + TLS + verification + the server's SETTINGS + the CONNECT's 200 (client). */
  openTimeoutMs: 10_000,
  /** A CONNECT stream the server's onStream has not answered (accept/refuse) gets 504 after this. */
  decisionTimeoutMs: 15_000,
  /** A session with no open stream and no traffic for this long is closed with GOAWAY (server). */
  serverIdleTimeoutMs: 60_000,
  /** Same, on the client: shorter than the server's, so the pool closes first and never races a GOAWAY. */
  clientIdleTimeoutMs: 30_000,
  /** A session with open streams but no traffic for the idle time is PINGed; no answer within this → dead. */
  pingTimeoutMs: 10_000,
  /** TCP keepalive on tunnel sockets: the kernel notices a vanished peer even when HTTP/2 is quiet. */
  tcpKeepAliveMs: 30_000,
  /** Streams one session carries at once: the server advertises it, the client also caps at it. */
  maxConcurrentStreams: 100,
  /** HPACK-accounted bytes (name + value + 32 per field) of a CONNECT's headers; above → 431. */
  maxHeaderListBytes: 8 * KiB,
  /** HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE: how much one stream may have in flight, at most (buffer-budget.ts lowers it as streams multiply). */
  streamWindowBytes: 4 * MiB,
  /** The smallest stream window the buffer budget lowers to (the protocol's default). */
  minStreamWindowBytes: 64 * KiB,
  /** What a stream's own buffers hold besides its window, both ways: the TunnelStream's and HTTP/2 stream's, a frame each. */
  streamBufferBytes: 128 * KiB,
  /** Window + stream buffers of every stream of one session together. */
  sessionBufferBytes: 64 * MiB,
  /** … of every tunnel stream of the node (both ends); the agent lowers it to 40 % of its memory limit (src/agent/memory-limit.ts). */
  nodeBufferBytes: 256 * MiB,
  /** Connection-level receive window (session.setLocalWindowSize), shared by all streams. */
  connectionWindowBytes: 16 * MiB,
  /**
   * SETTINGS_MAX_FRAME_SIZE we accept. The protocol default: on loopback 16 KiB and 1 MiB
   * frames measured the same (TLS records are 16 KiB anyway), and small frames interleave
   * the streams of a session fairly.
   */
  maxFrameBytes: 16 * KiB,
  /** Buffering of a TunnelStream each way before backpressure (the relay pauses the other side). */
  streamHighWaterMark: 64 * KiB,
  /** close(): how long sessions may drain after GOAWAY before they are destroyed. */
  closeGraceMs: 5_000
})

export type TunnelDefaults = typeof TUNNEL_DEFAULTS
