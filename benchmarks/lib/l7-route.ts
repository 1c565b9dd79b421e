import { closeSync, openSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { CLIENT, REPO_LAB_DIR } from './context'
import { ferry, sleep } from './exec'
import { LAB_STATE_DIR, type Lab } from './lab'

// The routed Service of the L7 lab (benchmarks/lab/bench-l7.yaml `server-routed`, the same
// nginx pod as `server-l7`) and its HTTPRoute (benchmarks/lab/bench-l7-route.yaml: one
// backend, a retry policy, a request timeout). applyL7Route puts the route in the mesh
// lab's configuration and returns once a request through the Service was carried out by
// the route at the source node (its request line names the rule), so no figure of the
// routed path is an L4 or unrouted one by mistake.

export const ROUTED_SERVICE = 'server-routed'
export const L7_ROUTE_FILE = join(REPO_LAB_DIR, 'bench-l7-route.yaml')
const HTTP_PORT = 8080
/** How much of node1's log end is read for the probe's request line. */
const LOG_TAIL_BYTES = 256 * 1024
const APPLY_TIMEOUT_MS = 60_000

/** Where the lab writes a node's agent log. */
export function agentLogFile (lab: Lab, node: string): string { return join(LAB_STATE_DIR, lab.name, 'logs', `node-${node}.log`) }

function logTail (file: string): string {
  const size = statSync(file).size
  const length = Math.min(size, LOG_TAIL_BYTES)
  const buf = Buffer.alloc(length)
  const fd = openSync(file, 'r')
  try { readSync(fd, buf, 0, length, size - length) } finally { closeSync(fd) }
  return buf.toString('utf8')
}

/** Whether the log ends with a request line for `probe` that a route handled. */
function routedLine (logFile: string, probe: string): boolean {
  return logTail(logFile).split('\n').some((l) => l.includes(probe) && l.includes('"reporter":"source"') && l.includes('"route_name":'))
}

/**
 * Applies the route to the mesh lab `lab`; resolves once node1's proxy routes the
 * Service's requests. `node1Log`: where node1's agent logs (another file where the agent
 * was replaced, as bench:profile does).
 */
export async function applyL7Route (lab: Lab, node1Log: string = agentLogFile(lab, 'node1')): Promise<void> {
  await ferry(['lab', 'apply', '--lab', lab.name, L7_ROUTE_FILE], 30_000)
  const base = `http://${lab.serviceIP('bench', ROUTED_SERVICE)}:${HTTP_PORT}`
  const deadline = Date.now() + APPLY_TIMEOUT_MS
  for (let i = 0; Date.now() < deadline; i++) {
    const probe = `/1k?route-probe=${process.pid}-${Date.now()}-${i}`
    const r = await lab.execPod(CLIENT.namespace, CLIENT.pod, ['curl', '-sf', '-o', '/dev/null', '--max-time', '2', `${base}${probe}`], 10_000)
    if (r.code === 0) {
      await sleep(200) // the request line is written as the request ends
      if (routedLine(node1Log, probe)) return
    }
    await sleep(300)
  }
  throw new Error(`l7 route: ${ROUTED_SERVICE} not routed by node1's proxy ${APPLY_TIMEOUT_MS / 1000} s after \`ferry lab apply ${L7_ROUTE_FILE}\``)
}
