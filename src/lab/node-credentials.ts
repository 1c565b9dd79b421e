import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createLabNodeTokens, writeLabNodeTokens } from '../controller/lab-node-tokens'
import type { LabPlan, PlanController } from './topology'

// The lab's side of workload identity: it plays the cluster's credential issuer. Each
// node's agent gets a bearer token of its own (a file, mode 0600, as a projected
// service-account token would be); the controller gets the token → node table
// (`--lab-nodes`). Tokens are made at `up` and live in the state dir, so a restarted
// agent or controller finds the same ones; `down` removes them with the state dir.
//
//   <stateDir>/tokens/            0700
//     lab-nodes.json              0600  for the controller
//     <node>.token                0600  one per agent (--ca-token-file)
//     admin.token                 0600  opens every agent's /debug/* (--admin-token-file);
//                                       `ferry policy check --lab` sends it
//   <stateDir>/ca/                0700  the controller's data dir (root key and certificate)

const DIR_MODE = 0o700
const SECRET_MODE = 0o600

/** Makes fresh node credentials and writes both sides of them. */
export async function writeLabCredentials (plan: LabPlan, ca: PlanController): Promise<void> {
  const { document, tokenOf } = createLabNodeTokens(plan.nodes.map((n) => n.name))
  const dirs = new Set([join(ca.tokensFile, '..'), ...plan.nodes.flatMap((n) => n.caTokenFile == null ? [] : [join(n.caTokenFile, '..')])])
  for (const dir of dirs) {
    mkdirSync(dir, { recursive: true, mode: DIR_MODE })
    chmodSync(dir, DIR_MODE)
  }
  await writeLabNodeTokens(ca.tokensFile, document)
  for (const node of plan.nodes) {
    if (node.caTokenFile == null) continue
    writeSecret(node.caTokenFile, `${tokenOf.get(node.name) as string}\n`)
  }
  if (plan.adminTokenFile != null) writeSecret(plan.adminTokenFile, `${randomBytes(32).toString('base64url')}\n`)
}

function writeSecret (path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`
  writeFileSync(tmp, text, { mode: SECRET_MODE })
  chmodSync(tmp, SECRET_MODE)
  renameSync(tmp, path)
}
