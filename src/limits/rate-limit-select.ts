import type { Pod, Service } from '../discovery/model'
import type { PodRateLimitSpec, RateLimitOf } from './pod-rate-limits'

// Which RateLimit (security.ferry.dev/v1alpha1) applies to a destination pod, from the
// configuration snapshot's RateLimit objects: those of the pod's namespace whose
// `selector` matches the pod's labels, or whose `targetRefs` name a Service of the
// namespace selecting the pod; neither written: every pod of the namespace. Several
// apply: the lowest sustained rate wins (then the name, for a stable choice) — a pod is
// never limited less than one of its RateLimits says.
//
// The shape below is the validated object's (src/resources/documents.ts RateLimit);
// only what this needs is named, so it takes the resources' objects as they are.

export type RateLimitPeriod = 'second' | 'minute' | 'hour'

export interface RateLimitObject {
  readonly metadata: { readonly namespace: string, readonly name: string }
  readonly spec: {
    readonly selector?: { readonly matchLabels: Readonly<Record<string, string>> }
    readonly targetRefs?: ReadonlyArray<{ readonly kind: string, readonly name: string }>
    readonly limit: { readonly requests: number, readonly per: RateLimitPeriod, readonly burst?: number }
  }
}

const PERIOD_SECONDS: Readonly<Record<RateLimitPeriod, number>> = Object.freeze({ second: 1, minute: 60, hour: 3600 })

/** `serviceOf`: the cluster snapshot's Service by namespace and name (targetRefs), undefined when unknown. */
export function rateLimitSelector (objects: readonly RateLimitObject[], serviceOf: (namespace: string, name: string) => Service | undefined): RateLimitOf {
  if (objects.length === 0) return () => null
  const byNamespace = new Map<string, Array<{ object: RateLimitObject, spec: PodRateLimitSpec }>>()
  for (const o of objects) {
    const l = o.spec.limit
    const spec: PodRateLimitSpec = Object.freeze({
      requests: l.requests,
      perSeconds: PERIOD_SECONDS[l.per],
      ...(l.burst === undefined ? {} : { burst: l.burst }),
      policy: `RateLimit ${o.metadata.namespace}/${o.metadata.name}`
    })
    const list = byNamespace.get(o.metadata.namespace) ?? []
    list.push({ object: o, spec })
    byNamespace.set(o.metadata.namespace, list)
  }
  for (const list of byNamespace.values()) {
    list.sort((a, b) => a.spec.requests / a.spec.perSeconds - b.spec.requests / b.spec.perSeconds || a.object.metadata.name.localeCompare(b.object.metadata.name))
  }
  // Per pod object: a new cluster snapshot brings new pod objects (labels may have changed).
  const memo = new WeakMap<Pod, PodRateLimitSpec | null>()
  return (pod) => {
    const held = memo.get(pod)
    if (held !== undefined) return held
    const found = byNamespace.get(pod.namespace)?.find((c) => applies(c.object, pod, serviceOf))?.spec ?? null
    memo.set(pod, found)
    return found
  }
}

function applies (o: RateLimitObject, pod: Pod, serviceOf: (namespace: string, name: string) => Service | undefined): boolean {
  const refs = o.spec.targetRefs ?? []
  if (refs.length > 0) {
    return refs.some((r) => {
      const s = r.kind === 'Service' ? serviceOf(pod.namespace, r.name) : undefined
      return s?.selector != null && matches(s.selector, pod.labels)
    })
  }
  return o.spec.selector === undefined || matches(o.spec.selector.matchLabels, pod.labels)
}

function matches (wanted: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(wanted)) if (labels[k] !== v) return false
  return true
}
