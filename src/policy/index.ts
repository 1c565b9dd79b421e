// Authorization and mTLS policy: AuthorizationPolicy evaluated at the destination in
// Istio's order, PeerAuthentication modes, and explanations of both.

export * from './model'
export { AuthorizationEngine, WorkloadAuthz, type AuthorizationOptions } from './evaluator'
export { MtlsModes, type MtlsOptions } from './peer-authentication'
export { compilePolicySet, type PolicySet } from './policy-set'
export { explain, type Explanation, type PolicyTrace, type RuleTrace, type ClauseTrace, type ConditionTrace } from './explain'
export { explanationText } from './explain-text'
export { resolveSource, resolveDestinations, type ResolvedSource, type ResolvedDestination } from './subjects'
export type { CompiledPolicy, PolicyScope } from './compile'
export { checkConnection, configView, type CheckResult, type ConfigView } from './check'
