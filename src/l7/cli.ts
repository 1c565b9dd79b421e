import pino from 'pino'
import type { ClusterSnapshot } from '../discovery/model'
import type { PolicySet } from '../policy/policy-set'
import { InboundAuthorizer } from '../proxy/authorize'
import { type L7CheckLine, l7CheckText, l7ForDestination } from './check'
import { l7PolicyLookupOf } from './policy-lookup'

// `ferry policy check`'s L7 section (src/cli/policy-command.ts): with --dir, decided here
// from the policies in the directory (through an authorizer holding them, as an agent's
// does) and --cluster-file; with --lab/--agent, the agent's answer (its /debug/authz
// carries `l7`), checked for shape before it is printed.

export { l7CheckText, type L7CheckLine }

export function l7ForCheck (set: PolicySet, to: string, cluster: ClusterSnapshot | null): L7CheckLine[] {
  const authz = new InboundAuthorizer({ log: pino({ level: 'silent' }) })
  authz.swap(set)
  return l7ForDestination(to, cluster, l7PolicyLookupOf(authz))
}

/** The `l7` lines of an agent's /debug/authz answer; anything malformed is left out. */
export function l7LinesOf (value: unknown): L7CheckLine[] {
  if (!Array.isArray(value)) return []
  return value.filter((l): l is L7CheckLine => l !== null && typeof l === 'object' &&
    typeof l.subject === 'string' && typeof l.engaged === 'boolean' && typeof l.protocol === 'string' && typeof l.reason === 'string')
}
