// The controller: Ferry's certificate authority (`ferry controller`).

export { Controller, type ControllerDeps } from './controller'
export { parseControllerOptions, parseListen, CONTROLLER_DEFAULTS, CONTROLLER_USAGE, type ControllerOptions } from './options'
export type { Authenticator, AuthnResult, Caller } from './authn'
export type { Authorizer, AuthzDecision } from './authz'
export { LabTokenAuthenticator } from './authn-lab'
export { PodNodeAuthorizer } from './authz-pod-node'
export { createLabNodeTokens, writeLabNodeTokens, parseLabNodeTokens, LAB_TOKENS_KIND, type LabNodeTokens } from './lab-node-tokens'
export { CA_FILES } from './ca-store'
