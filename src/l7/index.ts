// Where L7 applies and in which protocol (decision.ts explains the words).

export { type L7Decision, type L7Protocol, L7_PROTOCOLS, l7Decision } from './decision'
export { portProtocol, type PortProtocol } from './protocol'
export { L7_KEY } from './switch'
export { l7ForService, l7ForWorkload, workloadPortProtocol } from './engage'
export { L7Table, type ServicePortDecision, l7TableFor } from './table'
export { type L7PolicyLookup, NO_L7_POLICY, l7PolicyLookupOf } from './policy-lookup'
export { L7Warnings } from './warnings'
export { l7View, type L7View, type L7ServicePortView, type L7WorkloadPortView } from './view'
export { l7ForDestination, l7CheckText, type L7CheckLine } from './check'
export { l7ConfigSection, l7ForAuthz, type L7AdminDeps } from './admin'
