// gRPC status codes the proxy answers with itself (grpc/doc/statuscodes.md), and how an
// HTTP status the proxy would answer becomes one for a gRPC client
// (grpc/doc/http-grpc-status-mapping.md, which Envoy follows for its local replies).

export const GRPC_UNKNOWN = 2
export const GRPC_DEADLINE_EXCEEDED = 4
export const GRPC_PERMISSION_DENIED = 7
export const GRPC_RESOURCE_EXHAUSTED = 8
export const GRPC_UNIMPLEMENTED = 12
export const GRPC_INTERNAL = 13
export const GRPC_UNAVAILABLE = 14
export const GRPC_UNAUTHENTICATED = 16

/** The gRPC status a gRPC client gets for the HTTP status `status`. */
export function grpcStatusOfHttp (status: number): number {
  switch (status) {
    case 400: return GRPC_INTERNAL
    case 401: return GRPC_UNAUTHENTICATED
    case 403: return GRPC_PERMISSION_DENIED
    case 404: return GRPC_UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return GRPC_UNAVAILABLE
    default: return GRPC_UNKNOWN
  }
}

/** grpc-status of a header block (trailers, or a trailers-only response's headers); null when absent. */
export function grpcStatusIn (h: Readonly<Record<string, unknown>>): number | null {
  const s = h['grpc-status']
  if (typeof s !== 'string') return null
  const n = Number(s)
  return Number.isInteger(n) ? n : null
}
