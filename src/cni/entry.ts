import { isAbsolute } from 'node:path'
import { PATHS } from '../config/env'
import { ferryError } from '../errors'
import { parseDuration } from '../identity/duration'
import { PLUGIN_TIMEOUT } from './protocol'

// Ferry's entry in the node's CNI configuration list: what the runtime hands the
// ferry-cni plugin on stdin besides the runtime's own keys. `ferry cni install` writes it
// and the agent (--cni-conf-dir) keeps it there, both from the same settings:
//
//   {"type": "ferry-cni",
//    "agentSocket": "/var/run/ferry/cni.sock",       the agent's unix socket
//    "stateFile": "/var/run/ferry/cni-state.json",   what the plugin decides from
//    "timeoutMs": 30000,                             how long a meshed pod's ADD waits
//    "logFile": "/var/run/ferry/cni.log",            one JSON line per call (optional)
//    "capabilities": {"io.kubernetes.cri.pod-annotations": true}}
//
// The capability makes containerd pass the pod's annotations in runtimeConfig, so an
// opt-in or opt-out annotation counts even before the agent has seen the pod. The paths
// are the host's: the plugin runs on the host, and the agent's DaemonSet mounts the
// host's /var/run/ferry at the same path.

export const FERRY_PLUGIN_TYPE = 'ferry-cni'
export const POD_ANNOTATIONS_CAPABILITY = 'io.kubernetes.cri.pod-annotations'
/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107

export interface CniEntrySettings {
  readonly socket: string
  readonly stateFile: string
  readonly timeoutMs: number
  /** null: the plugin keeps no log file. */
  readonly logFile: string | null
}

export const CNI_ENTRY_DEFAULTS: CniEntrySettings = Object.freeze({ socket: PATHS.cniSocket, stateFile: PATHS.cniStateFile, timeoutMs: PLUGIN_TIMEOUT.defaultMs, logFile: null })

export function cniEntry (s: CniEntrySettings): Record<string, unknown> {
  return {
    type: FERRY_PLUGIN_TYPE,
    agentSocket: s.socket,
    stateFile: s.stateFile,
    timeoutMs: s.timeoutMs,
    ...(s.logFile === null ? {} : { logFile: s.logFile }),
    capabilities: { [POD_ANNOTATIONS_CAPABILITY]: true }
  }
}

/** Checks and freezes entry settings given on a command line; `flag` maps a setting to its option name for messages. */
export function entrySettings (values: { socket?: string, stateFile?: string, timeout?: string, logFile?: string }, flag: (name: 'socket' | 'state-file' | 'timeout' | 'log-file') => string, command: string): CniEntrySettings {
  const path = (name: 'socket' | 'state-file' | 'log-file', v: string | undefined, fallback: string | null): string | null => {
    if (v === undefined) return fallback
    if (!isAbsolute(v)) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry ${command}: ${flag(name)} "${v}" is invalid: expected an absolute path (on the host, where the plugin runs)`)
    return v
  }
  const socket = path('socket', values.socket, CNI_ENTRY_DEFAULTS.socket) as string
  if (Buffer.byteLength(socket) > MAX_SOCKET_PATH) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry ${command}: ${flag('socket')} "${socket}" is invalid: a unix socket path has at most ${MAX_SOCKET_PATH} bytes`)
  let timeoutMs = CNI_ENTRY_DEFAULTS.timeoutMs
  if (values.timeout !== undefined) {
    timeoutMs = parseDuration(values.timeout, `ferry ${command}: ${flag('timeout')}`, { minMs: 1, maxMs: PLUGIN_TIMEOUT.maxMs })
  }
  return Object.freeze({
    socket,
    stateFile: path('state-file', values.stateFile, CNI_ENTRY_DEFAULTS.stateFile) as string,
    timeoutMs,
    logFile: path('log-file', values.logFile, null)
  })
}
