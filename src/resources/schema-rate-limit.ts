import { AT_MOST_ONE, closed, int, selector } from './schema-parts'

// Ferry's RateLimit (security.ferry.dev/v1alpha1): a local rate limit for destination
// workloads, enforced at the destination node with one token bucket per destination pod
// (docs/traffic.md). Which pods: `selector` (their labels) or `targetRefs`
// (Services, whose selected pods), at most one of them; neither: every pod of the
// namespace. The CRD (src/install/crds.ts) is derived from this schema.

/** A Service in the RateLimit's namespace (Gateway API's LocalPolicyTargetReference). */
const targetRef = closed({
  group: { type: 'string', enum: ['', 'core'] },
  kind: { type: 'string', enum: ['Service'] },
  name: { type: 'string', minLength: 1 }
}, { required: ['kind', 'name'] })

export const RATE_LIMIT_SPEC = closed({
  selector,
  targetRefs: { type: 'array', minItems: 1, items: targetRef },
  limit: closed({
    requests: int(1, 1_000_000_000),
    per: { type: 'string', enum: ['second', 'minute', 'hour'] },
    burst: int(1, 1_000_000_000)
  }, { required: ['requests', 'per'] })
}, { required: ['limit'], [AT_MOST_ONE]: ['selector', 'targetRefs'] })
