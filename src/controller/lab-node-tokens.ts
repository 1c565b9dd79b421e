import { createHash, randomBytes } from 'node:crypto'
import { chmod, rename, writeFile } from 'node:fs/promises'
import Ajv from 'ajv'
import { ferryError } from '../errors'

// The lab's per-node credentials: a JSON file that maps bearer tokens to node names, which
// the lab writes (mode 0600) and the controller reads (`--lab-nodes FILE`). Each agent gets
// its own token; a token names exactly one node.
//
//   { "kind": "LabNodeTokens", "tokens": { "<token>": "<node name>", ... } }

export const LAB_TOKENS_KIND = 'LabNodeTokens'
const TOKEN_BYTES = 32
const NODE_NAME = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$'

const SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'tokens'],
  properties: {
    kind: { const: LAB_TOKENS_KIND },
    tokens: {
      type: 'object',
      propertyNames: { type: 'string', pattern: '^[A-Za-z0-9._~+/=-]{16,512}$' },
      additionalProperties: { type: 'string', pattern: NODE_NAME, maxLength: 253 }
    }
  }
}
const validate = new Ajv({ allErrors: false, strict: true }).compile(SCHEMA)

export interface LabNodeTokens {
  readonly kind: typeof LAB_TOKENS_KIND
  readonly tokens: Readonly<Record<string, string>>
}

/** Validates the text of a tokens file and returns digest(token) → node. Throws FERRY_ERR_CONFIG. */
export function parseLabNodeTokens (text: string, origin: string): ReadonlyMap<string, string> {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw ferryError('FERRY_ERR_CONFIG', `${origin}: not valid JSON: ${(err as Error).message}`)
  }
  if (!validate(doc)) {
    const e = validate.errors?.[0]
    throw ferryError('FERRY_ERR_CONFIG', `${origin}: field ${e?.instancePath === '' ? '(document)' : e?.instancePath ?? '?'}: ${e?.message ?? 'invalid'}`)
  }
  const byDigest = new Map<string, string>()
  for (const [token, node] of Object.entries((doc as unknown as LabNodeTokens).tokens)) byDigest.set(tokenDigest(token), node)
  return byDigest
}

/** Tokens are compared by digest, so a lookup's timing says nothing about how much of a guess matched. */
export function tokenDigest (token: string): string {
  return createHash('sha256').update(token).digest('hex')
}

/** New random credentials for `nodes`: the document to write and each node's token. */
export function createLabNodeTokens (nodes: readonly string[]): { document: LabNodeTokens, tokenOf: ReadonlyMap<string, string> } {
  const tokens: Record<string, string> = {}
  const tokenOf = new Map<string, string>()
  for (const node of nodes) {
    const token = randomBytes(TOKEN_BYTES).toString('base64url')
    tokens[token] = node
    tokenOf.set(node, token)
  }
  return { document: Object.freeze({ kind: LAB_TOKENS_KIND, tokens: Object.freeze(tokens) }), tokenOf }
}

/** Writes a tokens document atomically with mode 0600 (it holds secrets). */
export async function writeLabNodeTokens (path: string, document: LabNodeTokens): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`
  await writeFile(tmp, JSON.stringify(document, null, 2) + '\n', { mode: 0o600 })
  await chmod(tmp, 0o600)
  await rename(tmp, path)
}
