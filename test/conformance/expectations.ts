// The shape of a Gateway API mesh conformance case (conformance/utils/http's
// ExpectedResponse, as conformance/utils/echo uses it from inside a pod), and how an
// answer is judged against it. Field meanings are the suite's; cases are written in
// cases-http.ts and cases-grpc.ts.

export interface CaseRequest {
  /** 'http' unless said. */
  readonly protocol?: 'http' | 'grpc'
  /** host[:port] the client connects to; default `echo` (port 80 for HTTP). `$V2_POD_IP` stands for the suite's echo-v2 client pod's address. */
  readonly host?: string
  /** Path and query; for gRPC, the method (default the echo's Echo). */
  readonly path?: string
  /** Default GET for HTTP. */
  readonly method?: string
  /** Sent as given; a `Host` entry overrides the request's Host, not where it connects. */
  readonly headers?: Readonly<Record<string, string>>
}

export interface ExpectedCase {
  /** The suite's TestCaseName, when it gives one. */
  readonly name?: string
  /** Which of the suite's clients sends it: the first echo-v1 pod (default), echo-v2's, or the consumer namespace's echo-v1. */
  readonly client?: 'v1' | 'v2' | 'consumer'
  readonly request: CaseRequest
  /** What the backend must have received. */
  readonly expectedRequest?: {
    readonly path?: string
    readonly headers?: Readonly<Record<string, string>>
    readonly absentHeaders?: readonly string[]
  }
  readonly response?: {
    /** Default [200]; for gRPC, 0 (OK) counts as 200, as the suite maps it. */
    readonly statusCodes?: readonly number[]
    readonly headers?: Readonly<Record<string, string>>
    readonly absentHeaders?: readonly string[]
  }
  /** For a redirect: where the Location must point (empty fields as the suite defaults them). */
  readonly redirect?: { readonly scheme?: string, readonly host?: string, readonly port?: string, readonly path?: string }
  /** The answering pod's name must start with this. */
  readonly backend?: string
  readonly namespace?: string
}

export interface MeshConformanceTest {
  /** The suite's ShortName. */
  readonly shortName: string
  readonly description: string
  /** Route files under test/conformance/routes/, applied before the cases and deleted after. */
  readonly manifests: readonly string[]
  /** The suite marks it provisional (not yet part of a conformance profile). */
  readonly provisional?: boolean
  readonly cases: readonly ExpectedCase[]
  /** A weighted-distribution check: the request, and the share each backend must take. */
  readonly weights?: { readonly request: CaseRequest, readonly shares: Readonly<Record<string, number>> }
}

/** One answer as test/conformance/apps/echo-client.js prints it. */
export interface Answer {
  readonly code?: number
  readonly grpcCode?: number
  readonly error?: string
  readonly headers?: Record<string, string[]>
  readonly body?: any
}

/** The suite's defaults: host `echo`, GET for HTTP. */
export function withDefaults (r: CaseRequest): Required<Pick<CaseRequest, 'protocol' | 'host' | 'path'>> & CaseRequest {
  const protocol = r.protocol ?? 'http'
  return { ...r, protocol, host: r.host ?? 'echo', path: r.path ?? '', method: protocol === 'grpc' ? undefined : (r.method ?? 'GET') }
}

/** The suite's generated case name (ExpectedResponse.GetTestCaseName). */
export function caseName (c: ExpectedCase, i: number): string {
  if (c.name !== undefined) return c.name
  const r = withDefaults(c.request)
  const base = `${i} request to '${r.host}${r.path}'${c.request.headers !== undefined ? ' with headers' : ''}`
  return c.backend !== undefined ? `${base} should go to ${c.backend}` : `${base} should receive one of [${(c.response?.statusCodes ?? [200]).join(' ')}]`
}

/** The pod that answered (the suite's Hostname). */
export function answeredBy (a: Answer): string {
  const b = a.body
  if (b === null || typeof b !== 'object') return ''
  return String(b.pod ?? b.context?.pod ?? '')
}

/** Request headers the backend saw, by lower-case name, each with its values in order. */
function seenHeaders (a: Answer): Map<string, string[]> {
  const out = new Map<string, string[]>()
  const b = a.body
  if (b === null || typeof b !== 'object') return out
  const add = (name: string, value: string): void => { out.set(name.toLowerCase(), [...(out.get(name.toLowerCase()) ?? []), value]) }
  if (Array.isArray(b.headers)) for (const h of b.headers) add(String(h.key), String(h.value))
  else if (b.headers !== null && typeof b.headers === 'object') for (const [k, vs] of Object.entries(b.headers)) for (const v of vs as string[]) add(k, v)
  return out
}

const isRedirect = (code: number): boolean => [301, 302, 303, 307, 308].includes(code)

/**
 * Why `a` does not meet `c`, or null when it does. The checks of the suite's mesh client
 * (conformance/utils/echo compareRequest: status, request headers present with their
 * values joined by "," and absent, response headers, the answering pod's name prefix),
 * plus the two its mesh client leaves out and its gateway client makes: the path the
 * backend saw (when the case states one) and a redirect's Location (scheme, host, port,
 * path, with the gateway client's defaults).
 */
export function mismatch (c: ExpectedCase, a: Answer): string | null {
  const r = withDefaults(c.request)
  if (a.code === undefined) return `no answer: ${a.error ?? 'unknown error'}`
  const wanted = (c.response?.statusCodes ?? [200]).map((s) => r.protocol === 'grpc' && s === 0 ? 200 : s)
  if (!wanted.includes(a.code)) return `status ${a.code}${a.error !== undefined ? ` (${a.error})` : ''}, wanted one of ${wanted.join(', ')}`
  const seen = seenHeaders(a)
  for (const [name, value] of Object.entries(c.expectedRequest?.headers ?? {})) {
    const got = seen.get(name.toLowerCase())
    if (got === undefined) return `the backend did not receive ${name} (it received ${[...seen.keys()].join(', ')})`
    if (got.join(',') !== value) return `the backend received ${name}: ${got.join(',')}, wanted ${value}`
  }
  for (const name of c.expectedRequest?.absentHeaders ?? []) {
    const got = seen.get(name.toLowerCase())
    if (got !== undefined) return `the backend received ${name}: ${got.join(',')}, wanted none`
  }
  const responseHeader = (name: string): string[] => a.headers?.[name.toLowerCase()] ?? []
  for (const name of c.response?.absentHeaders ?? []) {
    if (responseHeader(name).length > 0) return `the answer carries ${name}: ${responseHeader(name).join(',')}, wanted none`
  }
  for (const [name, value] of Object.entries(c.response?.headers ?? {})) {
    const got = responseHeader(name)[0] ?? ''
    if (got !== value) return `the answer's ${name} is "${got}", wanted "${value}"`
  }
  const pod = answeredBy(a)
  if (!pod.startsWith(c.backend ?? '')) return `answered by ${pod === '' ? 'no echo pod' : pod}, wanted ${c.backend ?? ''}…`
  if (c.expectedRequest?.path !== undefined && r.protocol === 'http' && a.body?.path !== c.expectedRequest.path) {
    return `the backend saw path ${String(a.body?.path)}, wanted ${c.expectedRequest.path}`
  }
  if (c.redirect !== undefined && isRedirect(a.code)) return redirectMismatch(c, r.path, a)
  return null
}

function redirectMismatch (c: ExpectedCase, requestPath: string, a: Answer): string | null {
  const location = a.headers?.location?.[0]
  if (location === undefined) return `a ${String(a.code)} without Location`
  let url: URL
  try { url = new URL(location, 'http://relative.invalid') } catch { return `Location ${location} is no URL` }
  const scheme = url.protocol.replace(/:$/, '')
  const want = c.redirect ?? {}
  // The gateway client's defaults: an unstated host is not checked, an unstated scheme is
  // the request's (http), an unstated path the request's; an unstated port must be the
  // scheme's own or absent.
  if (want.host !== undefined && url.hostname !== want.host) return `redirected to host ${url.hostname} (${location}), wanted ${want.host}`
  if (want.port !== undefined && url.port !== want.port) return `redirected to port "${url.port}" (${location}), wanted ${want.port}`
  if (want.port === undefined && !(url.port === '' || (scheme === 'http' && url.port === '80') || (scheme === 'https' && url.port === '443'))) {
    return `redirected to port ${url.port} (${location}), wanted the ${scheme} scheme's own`
  }
  if (scheme !== (want.scheme ?? 'http')) return `redirected with scheme ${scheme} (${location}), wanted ${want.scheme ?? 'http'}`
  const path = want.path ?? requestPath.split('?')[0]
  if (url.pathname !== path) return `redirected to path ${url.pathname} (${location}), wanted ${path}`
  return null
}

/** The suite's backend name of a pod: its name without the ReplicaSet hash and pod suffix. */
export function backendOf (pod: string): string {
  const parts = pod.split('-')
  return parts.length < 3 ? pod : parts.slice(0, -2).join('-')
}

/** The suite's weight check (conformance/utils/weight): each backend's share within ±5 points, only the weighted backends answering. */
export function weightMismatch (pods: readonly string[], shares: Readonly<Record<string, number>>): string | null {
  const seen = new Map<string, number>()
  for (const p of pods) {
    const b = backendOf(p)
    if (!(b in shares)) return `answered by ${p} (backend ${b}), which has no weight`
    seen.set(b, (seen.get(b) ?? 0) + 1)
  }
  const active = Object.values(shares).filter((w) => w > 0).length
  const errs: string[] = []
  if (seen.size !== active) errs.push(`${seen.size} backends answered, wanted ${active}`)
  for (const [b, share] of Object.entries(shares)) {
    const got = (seen.get(b) ?? 0) / pods.length
    if (share > 0 && !seen.has(b)) errs.push(`${b} received nothing`)
    else if (Math.abs(got - share) > WEIGHT_TOLERANCE) errs.push(`${b} took ${got.toFixed(3)}, wanted ${share} ± ${WEIGHT_TOLERANCE}`)
  }
  return errs.length === 0 ? null : errs.join('; ')
}

/** The suite's constants for the weight check. */
export const WEIGHT_TOLERANCE = 0.05
export const WEIGHT_REQUESTS = 500
export const WEIGHT_MAX_TRIES = 10
