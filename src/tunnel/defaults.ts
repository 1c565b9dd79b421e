// Tunnel timings, limits and HTTP/2 flow-control sizes. Ports live in src/config/env.ts
// (PORTS.tunnel = 15008). docs/tunnel.md explains each value.

const KiB = 1024
const MiB = 1024 * KiB
/**
 * Sizes Node itself buffers by, which the budget's arithmetic builds on (a test checks
 * them against this Node): the default high-water mark of its streams (sockets and HTTP/2
 * streams alike), and the largest read from a socket.
 */
export const NODE_HIGH_WATER_MARK = 16 * KiB
export const SOCKET_READ = 64 * KiB
/** The largest piece of received DATA Node's HTTP/2 hands over at once: what one TLS record carries, whatever the frame size. */
const FRAME = 16 * KiB

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
  /** HTTP/2 SETTINGS_INITIAL_WINDOW_SIZE: how much one stream may have in flight, at most (windows start at minStreamWindowBytes and grow to it with demand: session-buffers.ts). */
  streamWindowBytes: 4 * MiB,
  /**
   * The window every session starts at, and shrinks back to without demand. A quarter of a
   * 16 KiB frame: the sender sends 4 KiB DATA frames, and one stream still moves tens of
   * MB/s on a LAN (docs/tunnel.md); small enough that 10,000 streams fit the DaemonSet's
   * budget.
   */
  minStreamWindowBytes: 4 * KiB,
  /**
   * What an open stream costs besides its buffers: its objects on this node (the HTTP/2
   * stream, the TunnelStream, the pod-side socket and the proxy's record of the
   * connection), so that the budget bounds the number of streams too. The idle10k
   * benchmark measured 13–16 KiB of agent RSS per added connection on each node, between
   * 3,000 and 10,000 connections (docs/reliability.md, "10,000 concurrent connections").
   */
  streamOverheadBytes: 16 * KiB,
  /**
   * The buffers a stream holds while its receive side is backed up (its pod does not
   * read), besides its window: Node's HTTP/2 stream keeps reading until its own buffer
   * reaches its high-water mark (16 KiB, plus the piece that crossed it), the
   * TunnelStream holds one piece, the socket to the pod one high-water mark plus a piece.
   */
  receiveStallBytes: (NODE_HIGH_WATER_MARK + FRAME) + FRAME + (NODE_HIGH_WATER_MARK + FRAME),
  /**
   * The buffers a stream holds while its send side is backed up (the peer's window is
   * closed): the pod's socket reads one more read (64 KiB) after the relay pauses it, on
   * top of what it buffered below its high-water mark; Node's HTTP/2 stream takes writes
   * until its high-water mark, plus the write that crossed it (the TunnelStream holds
   * only that one write, which is HTTP/2's).
   */
  sendStallBytes: (NODE_HIGH_WATER_MARK + SOCKET_READ) + (NODE_HIGH_WATER_MARK + SOCKET_READ),
  /**
   * A side of a stream backed up for this long leases its buffers (buffer-budget.ts);
   * one that drains sooner — a moving stream's chunk in transit, waiting for its TLS
   * write or its socket — costs nothing. What is in transit is bounded by how fast the
   * agent reads, times this.
   */
  stallLeaseAfterMs: 50,
  /**
   * When the budget has no room for a lease, a stream that is moving (drained within this
   * long, or opened) may have any backed-up stream reset for it, the longest backed up
   * first; one that is not moving only streams backed up for this long.
   */
  stallGraceMs: 1_000,
  /** Window + overhead of every stream of one session together. */
  sessionBufferBytes: 64 * MiB,
  /** Every tunnel stream of the node (both ends): windows, overheads and stalled buffers; the agent lowers it to half its memory limit (src/agent/memory-limit.ts). */
  nodeBufferBytes: 256 * MiB,
  /** The share of nodeBufferBytes open streams' windows and overheads may take: the rest is always there for stalled buffers. */
  openBufferShare: 0.8,
  /** Connection-level receive window (session.setLocalWindowSize), shared by all streams. */
  connectionWindowBytes: 16 * MiB,
  /**
   * SETTINGS_MAX_FRAME_SIZE we accept. The protocol default: on loopback 16 KiB and 1 MiB
   * frames measured the same (TLS records are 16 KiB anyway), and small frames interleave
   * the streams of a session fairly.
   */
  maxFrameBytes: 16 * KiB,
  /** close(): how long sessions may drain after GOAWAY before they are destroyed. */
  closeGraceMs: 5_000
})

export type TunnelDefaults = typeof TUNNEL_DEFAULTS
