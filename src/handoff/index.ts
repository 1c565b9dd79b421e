// Listening sockets handed from an old agent to a new one on the same node, so an
// upgrade costs no connection (docs/architecture.md, "Upgrades: the handoff").
export { HANDED_OFF_MESSAGE, HandoffServer, type HandoffServerOptions, type HandoffServerState } from './server'
export { takeOver, type Takeover, type TakeOverOptions } from './take-over'
export { MAX_KEY_BYTES, type HandoffListener } from './protocol'
