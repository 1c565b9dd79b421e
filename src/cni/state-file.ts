import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import { MESH_ANNOTATION, MESH_LABEL } from '../discovery/mesh-policy'
import type { ClusterSnapshot } from '../discovery/model'
import { ferryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import { writeFileAtomic } from '../util/atomic-write'

// The small file the ferry-cni plugin decides from without asking the agent
// (native/cni/decide.c), so that an agent that is down never holds back a pod the mesh
// does not concern: which namespaces are meshed, and which of this node's pods opt in
// or out with the annotation ferry.dev/mesh. The agent rewrites it, atomically, each
// time one of those changes (never when nothing did); it stays in place while the agent
// restarts, so meshed pods keep waiting for the next agent.
//
//   {"version": 1, "node": "n1", "meshedNamespaces": ["shop"],
//    "pods": [{"namespace": "shop", "name": "legacy", "uid": "…", "mesh": "disabled"}]}

export const CNI_STATE_VERSION = 1

export interface CniStatePod {
  readonly namespace: string
  readonly name: string
  readonly uid: string
  readonly mesh: 'enabled' | 'disabled'
}

export interface CniState {
  readonly version: typeof CNI_STATE_VERSION
  readonly node: string
  readonly meshedNamespaces: readonly string[]
  readonly pods: readonly CniStatePod[]
}

/** What the plugin needs from a snapshot, sorted so the same cluster gives the same text. */
export function cniState (snapshot: ClusterSnapshot, node: string): CniState {
  const meshedNamespaces = snapshot.namespaces.filter((n) => n.labels[MESH_LABEL] === 'enabled').map((n) => n.name).sort()
  const pods: CniStatePod[] = []
  for (const p of snapshot.pods) {
    const mesh = p.annotations[MESH_ANNOTATION]
    if (p.nodeName !== node || (mesh !== 'enabled' && mesh !== 'disabled')) continue
    pods.push({ namespace: p.namespace, name: p.name, uid: p.uid, mesh })
  }
  pods.sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.uid.localeCompare(b.uid))
  return { version: CNI_STATE_VERSION, node, meshedNamespaces, pods }
}

export class CniStateWriter {
  private lastText: string | null = null

  constructor (private readonly path: string, private readonly node: string, private readonly log: Logger) {}

  /** Writes the state of `snapshot` if it differs from what the file holds; true when it wrote. */
  update (snapshot: ClusterSnapshot): boolean {
    const text = `${JSON.stringify(cniState(snapshot, this.node), null, 2)}\n`
    if (this.lastText === null) this.lastText = readOrNull(this.path)
    if (text === this.lastText) return false
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 })
      writeFileAtomic(this.path, text, 0o600)
    } catch (err) {
      // The plugin keeps deciding from the previous file; the next snapshot tries again.
      this.lastText = null
      this.log.error({ err, code: 'FERRY_ERR_CNI_CONF', path: this.path }, 'cannot write the CNI state file')
      return false
    }
    this.lastText = text
    const state = JSON.parse(text) as CniState
    this.log.info({ path: this.path, meshedNamespaces: state.meshedNamespaces, pods: state.pods.length, generation: snapshot.generation }, 'CNI state file written')
    return true
  }
}

/** Removes the state file (uninstall): the plugin then lets every pod through. */
export function removeStateFile (path: string): boolean {
  try {
    const existed = readOrNull(path) !== null
    rmSync(path, { force: true })
    return existed
  } catch (err) {
    throw ferryError('FERRY_ERR_CNI_CONF', `cannot remove the CNI state file ${path}: ${(err as Error).message}`, { cause: err })
  }
}

function readOrNull (path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}
