import t from 'tap'
import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { ERROR_CODES, FerryError, isFerryError } from '../src/errors'

// Guards the contract that error codes are stable and documented: every code in
// src/errors.ts has a row in docs/errors.md, every row names a real code, and every
// FERRY_ERR_* literal used anywhere in src/ or native/ is a declared code.
const root = join(__dirname, '..')
const documented = new Set([...readFileSync(join(root, 'docs/errors.md'), 'utf8').matchAll(/`(FERRY_ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]))
const declared = new Set(Object.keys(ERROR_CODES))

function walk (dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) walk(p, out)
    else if (/\.(ts|cc|h)$/.test(name)) out.push(p)
  }
  return out
}

t.test('every declared code is documented', async (t) => {
  for (const code of declared) t.ok(documented.has(code), `${code} is in docs/errors.md`)
})

t.test('every documented code is declared', async (t) => {
  for (const code of documented) t.ok(declared.has(code as string), `${code as string} is in src/errors.ts`)
})

t.test('every FERRY_ERR_* used in the sources is declared', async (t) => {
  const files = walk(join(root, 'src')).concat(walk(join(root, 'native')))
  const used = new Set<string>()
  for (const f of files) for (const m of readFileSync(f, 'utf8').matchAll(/FERRY_ERR_[A-Z0-9_]+/g)) used.add(m[0])
  t.ok(used.size > 0, 'found uses')
  for (const code of used) t.ok(declared.has(code), `${code} is declared`)
})

t.test('FerryError carries code and errno', async (t) => {
  const err = new FerryError('FERRY_ERR_NETNS', 'no such netns', { errno: 'ENOENT' })
  t.equal(err.code, 'FERRY_ERR_NETNS')
  t.equal(err.errno, 'ENOENT')
  t.ok(isFerryError(err, 'FERRY_ERR_NETNS'))
  t.notOk(isFerryError(err, 'FERRY_ERR_CGROUP'))
  t.notOk(isFerryError(new Error('plain')))
})
