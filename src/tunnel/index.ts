// The HBONE tunnel between node proxies: HTTP/2 CONNECT over mutual TLS 1.3 (port 15008).
// A library: the server end accepts verified peers' CONNECT streams and lets the agent
// decide; the client end pools sessions per (source identity, destination identity,
// node). See docs/tunnel.md.
export { TunnelServer, type TunnelServerStats } from './server'
export { TunnelPool, type TunnelOpenRequest, type TunnelPoolStats } from './pool'
export { TunnelStream, h2CodeName, type TunnelEnds } from './tunnel-stream'
export type { TunnelRequest } from './server-stream'
export type { TunnelServerOptions, TunnelPoolOptions } from './options'
export { TunnelError, isTunnelError, type TunnelRefusal, type RefusalHook, type RefusalReason, type RefusalStage, type OpenFailureReason } from './refusal'
export { sniOf, isTunnelSni, SniIndex } from './sni'
export { parseAuthority, formatAuthority, type TunnelAuthority } from './authority'
export { TUNNEL_DEFAULTS } from './defaults'
export { TunnelAdmission, type AdmissionLimits } from './admission'
export { NodeBufferBudget, type BufferLimits } from './buffer-budget'
