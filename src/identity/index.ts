// Workload identity: SPIFFE IDs, keys and CSRs, the agent's certificate manager and CA
// client, and the TLS settings and peer verification the tunnel uses.

export { parseSpiffeId, tryParseSpiffeId, spiffeIdOf, formatSpiffeId, validateTrustDomain, spiffeIdProblem, type SpiffeId } from './spiffe-id'
export { generateWorkloadKey, type WorkloadKey } from './keys'
export { createCsr, parseCsr, type ParsedCsr, MAX_CSR_PEM_BYTES } from './csr'
export { svidFromChain, type Svid } from './svid'
export { CaClient, tokenFromFile, CA_CLIENT_DEFAULTS, type CaClientOptions, type CertificateSigner } from './ca-client'
export { CertificateManager, CERTIFICATE_DEFAULTS, type CertificateManagerOptions, type RotatedEvent, type RetryEvent, type ExpiredEvent } from './certificate-manager'
export { IdentityMetrics, IDENTITY_METRIC_NAMES } from './metrics'
export { backoffDelay, checkBackoff, DEFAULT_BACKOFF, RECONNECT_BACKOFF, type BackoffPolicy } from './backoff'
export { createClock, systemClock, type Clock, type Random, type TimerHandle } from './clock'
export { parseDuration, formatDuration, type DurationRange } from './duration'
export { CERT_TTL, parseCertTtl } from './cert-ttl'
export { verifyPeer, verifyTlsPeer, trustBundleOf, type TrustBundle, type PeerChain, type PeerVerification, type PeerRejectReason } from './peer-verify'
export { tunnelServerOptions, tunnelClientOptions, svidContextOptions, svidSecureContext, TUNNEL_ALPN, TUNNEL_TLS_VERSION } from './tls-options'
export { splitCertificates } from './pem'
