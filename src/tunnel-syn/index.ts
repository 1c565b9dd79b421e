// The tunnel port's admission in the kernel: a per-source SYN rate (a BPF socket filter)
// and TCP_DEFER_ACCEPT on the port's listeners, and the choice of a worker's listener for
// each new connection (an sk_lookup program, so that only the agent's listeners get one). The agent reaches it through its
// platform (src/agent/platform.ts); the user-space gate (src/tunnel/accept-gate.ts)
// stays behind it as the second line.
export { SynFilter, type SynCounts, type SynLimits, type SynListenOptions } from './syn-filter'
