// The tunnel port's admission in the kernel: a per-source SYN rate (a BPF socket filter)
// and TCP_DEFER_ACCEPT on the port's listeners. The agent reaches it through its
// platform (src/agent/platform.ts); the user-space gate (src/tunnel/accept-gate.ts)
// stays behind it as the second line.
export { SynFilter, type SynCounts, type SynLimits, type SynListenOptions } from './syn-filter'
