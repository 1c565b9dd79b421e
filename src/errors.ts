// Every error Ferry raises on purpose is a FerryError with a stable `code`.
// Codes are part of the public contract: never reuse one for a new meaning, and list
// each in docs/errors.md (test/errors.test.ts checks both directions).
//
// Errors caused by traffic are counted and logged by the data path, never thrown
// out of it: these classes are for configuration, the CLI, the lab and the agent's
// control paths.

export class FerryError extends Error {
  readonly code: string
  /** errno from a failed system call, when there was one (e.g. EPERM, ENOENT). */
  readonly errno?: string
  constructor (code: string, message: string, opts: { cause?: unknown, errno?: string } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'FerryError'
    this.code = code
    if (opts.errno !== undefined) this.errno = opts.errno
  }
}

/** Codes and one-line meanings; docs/errors.md explains each at length. */
export const ERROR_CODES = {
  FERRY_ERR_INVALID_ARG: 'a function or CLI received an argument it cannot use',
  FERRY_ERR_CONFIG: 'a configuration file or document is malformed or invalid',
  FERRY_ERR_WORKLOAD_NOT_FOUND: 'no pod, service or service port by that name in the cluster snapshot',
  FERRY_ERR_AGENT_UNAVAILABLE: 'an agent\'s admin server could not be reached or did not answer as expected (ferry policy check --lab/--agent)',
  FERRY_ERR_MANIFEST: 'a lab manifest is malformed, unknown to Kubernetes, or unsupported by the lab',
  FERRY_ERR_NATIVE: 'the native addon failed a system or libbpf call (see errno)',
  FERRY_ERR_LISTEN: 'a listening socket could not be made: the address is in use or not on this host, the port is privileged, or socket() failed (see errno)',
  FERRY_ERR_NATIVE_MISSING: 'the native addon or a compiled eBPF object is not built',
  FERRY_ERR_BPF_LOAD: 'an eBPF object could not be opened, verified or loaded',
  FERRY_ERR_BPF_ATTACH: 'an eBPF program could not be attached, pinned or updated',
  FERRY_ERR_BPF_MAP: 'an eBPF map operation failed',
  FERRY_ERR_BPFFS: 'bpffs is not mounted and could not be mounted',
  FERRY_ERR_SOCKMAP_BTF: 'the running kernel\'s BTF lacks a field or kfunc the sockmap shortcut reads, or cannot be read: the shortcut is off and pod hops take TCP',
  FERRY_ERR_NETNS: 'a network namespace could not be opened or entered',
  FERRY_ERR_CGROUP: 'a cgroup v2 directory is missing or unusable',
  FERRY_ERR_KUBELET_CGROUP: 'the kubelet\'s cgroup (--kubelet-cgroup) cannot be found or is unusable for probe admission',
  FERRY_ERR_ENROLL: 'a pod could not be enrolled in capture',
  FERRY_ERR_WORKER: 'a data-path worker failed (an uncaught exception, or it exited); the main thread starts a new one',
  FERRY_ERR_LAB: 'a lab operation failed',
  FERRY_ERR_LAB_EXISTS: 'a lab with that name is already up',
  FERRY_ERR_LAB_NOT_FOUND: 'no lab with that name is up',
  FERRY_ERR_LAB_TIMEOUT: 'a lab did not become ready in time',
  FERRY_ERR_LAB_CNI: 'the lab could not set up or tear down a pod\'s network through its node\'s CNI configuration (a chained plugin failed, or could not be run)',
  FERRY_ERR_POD_NOT_FOUND: 'no pod or node of that name in the lab',
  FERRY_ERR_PRIVILEGE: 'the operation needs root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)',
  FERRY_ERR_SPIFFE_ID: 'a SPIFFE ID is malformed or not of the form spiffe://<trust-domain>/ns/<ns>/sa/<sa>',
  FERRY_ERR_CSR: 'a certificate signing request is malformed, badly signed, or asks for names the CA does not issue',
  FERRY_ERR_CERT: 'a certificate or chain is malformed or does not match the key and identity it was issued for',
  FERRY_ERR_CA_STORE: 'the CA data directory or its root key and certificate are missing, mismatched or unusable',
  FERRY_ERR_CA_UNAVAILABLE: 'the certificate authority could not be reached or did not answer in time',
  FERRY_ERR_CA_REFUSED: 'the certificate authority refused a certificate request',
  FERRY_ERR_AUTHN: 'an agent presented no credential, or one the controller does not accept',
  FERRY_ERR_AUTHZ: 'a node asked for the identity of a pod that is not scheduled on it',
  FERRY_ERR_AUTHN_UNAVAILABLE: 'the controller could not check an agent\'s credential (the Kubernetes TokenReview failed); retryable',
  FERRY_ERR_CONFIG_STREAM: 'the configuration stream from the controller failed or was refused; the agent keeps its last good configuration and reconnects',
  FERRY_ERR_CONFIG_STATE: 'a saved configuration (the agent\'s --config-cache, the controller\'s last good state in --data-dir) is unreadable or corrupt; it is ignored',
  FERRY_ERR_TUNNEL_CONNECT: 'a tunnel to a peer node could not be opened: connect, TLS handshake, timeout, or the session or stream closed before the CONNECT was answered',
  FERRY_ERR_TUNNEL_PEER: 'the peer node presented a tunnel certificate that failed verification (other CA, expired, wrong identity, ...)',
  FERRY_ERR_TUNNEL_REFUSED: 'the peer node answered a tunnel CONNECT with a refusal status',
  FERRY_ERR_TUNNEL_BUSY: 'this node\'s tunnel buffer budget has no room for another stream, or for the buffers of an open stream that backed up (it is reset)',
  FERRY_ERR_KUBE_API: 'the Kubernetes API server could not be reached, refused a request, or a list or watch failed',
  FERRY_ERR_CNI: 'a request from the ferry-cni plugin could not be served: malformed, for a pod discovery did not show in time, or for a pod of another node',
  FERRY_ERR_HANDOFF: 'handing listening sockets from the old agent to a new one failed: the peer is not root, broke the protocol, refused (busy), or did not answer in time',
  FERRY_ERR_CNI_CONF: "the node's CNI configuration or plugin directory could not be read or changed (a primary configuration that is not valid JSON, a file that cannot be written)"
} as const

export type FerryErrorCode = keyof typeof ERROR_CODES

export function ferryError (code: FerryErrorCode, message: string, opts?: { cause?: unknown, errno?: string }): FerryError {
  return new FerryError(code, message, opts)
}

export function isFerryError (err: unknown, code?: FerryErrorCode): err is FerryError {
  return err instanceof FerryError && (code === undefined || err.code === code)
}
