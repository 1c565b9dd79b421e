import fc from 'fast-check'
import { ERROR_CODES, FerryError, type FerryErrorCode } from '../../src/errors'

// Shared settings of the property-based fuzzers (test/fuzz/): one fixed seed, and a run
// count per property that the default suite keeps small and `npm run fuzz` scales up.
//
//   FERRY_FUZZ_SEED   the seed of every property (default below; a failure prints the
//                     seed and the path of the failing case)
//   FERRY_FUZZ_SCALE  multiplies every property's suite run count (`npm run fuzz` sets it)
//   FERRY_FUZZ_PATH   with the seed, replays exactly the case fast-check printed (run the
//                     one file, and tap's --grep to pick the one property)

export const FUZZ_SEED = envInt('FERRY_FUZZ_SEED', 20261208)
export const FUZZ_SCALE = envInt('FERRY_FUZZ_SCALE', 1)
const FUZZ_PATH = process.env.FERRY_FUZZ_PATH

/**
 * Longest any one input may take to parse before it counts as a hang. Synchronous
 * parsers are measured in CPU time of this process (not wall time: on a loaded machine
 * the wall clock says little), so the bound can stay tight enough to catch a quadratic
 * parse of a 20-kilobyte input. Async parsers (a CSR's signature check) get fast-check's
 * wall-clock timeout, ASYNC_BOUND_MS.
 */
export const PER_INPUT_BOUND_MS = 2000
export const ASYNC_BOUND_MS = 10_000

/** fc.assert parameters: the fixed seed, `suiteRuns` × FERRY_FUZZ_SCALE runs, and the async per-input bound. */
export function fuzzParams<T> (suiteRuns: number): fc.Parameters<T> {
  return {
    seed: FUZZ_SEED,
    numRuns: Math.max(1, Math.round(suiteRuns * FUZZ_SCALE)),
    timeout: ASYNC_BOUND_MS,
    ...(FUZZ_PATH === undefined || FUZZ_PATH === '' ? {} : { path: FUZZ_PATH }),
    includeErrorInReport: true
  }
}

/** The run count a property gets (for reports). */
export function fuzzRuns (suiteRuns: number): number {
  return Math.max(1, Math.round(suiteRuns * FUZZ_SCALE))
}

export type Outcome<R> = { readonly ok: true, readonly value: R } | { readonly ok: false, readonly error: FerryError }

/**
 * Runs one parse of one input. It must return, or throw a FerryError whose code is one
 * of `codes` and whose message says something; anything else (a TypeError, a RangeError,
 * a raw library error) fails the property with the input. A synchronous call taking
 * longer than PER_INPUT_BOUND_MS fails it too (a catastrophic backtracking regex).
 */
export function outcome<R> (codes: readonly FerryErrorCode[], parse: () => R): Outcome<R> {
  const started = process.cpuUsage()
  let result: Outcome<R>
  try {
    result = { ok: true, value: parse() }
  } catch (err) {
    result = { ok: false, error: checkError(err, codes) }
  }
  boundTime(started)
  return result
}

/** outcome() for a parser that returns a promise; the async bound is fast-check's `timeout`. */
export async function outcomeAsync<R> (codes: readonly FerryErrorCode[], parse: () => Promise<R>): Promise<Outcome<R>> {
  try {
    return { ok: true, value: await parse() }
  } catch (err) {
    return { ok: false, error: checkError(err, codes) }
  }
}

/** A synchronous call that must never throw at all (parsers that answer null or a verdict). */
export function total<R> (parse: () => R): R {
  const started = process.cpuUsage()
  const value = parse()
  boundTime(started)
  return value
}

function boundTime (started: NodeJS.CpuUsage): void {
  const used = process.cpuUsage(started)
  const took = (used.user + used.system) / 1000
  if (took > PER_INPUT_BOUND_MS) throw new Error(`one input took ${Math.round(took)} ms of CPU (bound ${PER_INPUT_BOUND_MS} ms): a hang`)
}

function checkError (err: unknown, codes: readonly FerryErrorCode[]): FerryError {
  if (!(err instanceof FerryError)) {
    const e = err as Error
    throw new Error(`not a Ferry error: ${e?.name ?? typeof err}: ${e?.message ?? String(err)}`, { cause: err })
  }
  if (!Object.hasOwn(ERROR_CODES, err.code) || !codes.includes(err.code as FerryErrorCode)) {
    throw new Error(`unexpected code ${err.code} (expected ${codes.join(' or ')}): ${err.message}`, { cause: err })
  }
  if (err.message.trim().length < 10) throw new Error(`${err.code} with no useful message: "${err.message}"`, { cause: err })
  return err
}

// Generators shared by the fuzzers.

/** Any string: ASCII, full Unicode (lone surrogates included), and control characters. */
export function anyText (maxLength = 80): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength }),
    fc.string({ unit: 'binary', maxLength }),
    fc.string({ unit: fc.constantFrom('\u0000', '\t', '\n', '\r', ' ', '"', "'", '\\', '/', ':', '%', '[', ']', '{', '}', '-', '.', '0', '9', 'a', 'é', '\u2028', '\ud800'), maxLength })
  )
}

/**
 * The classic probe for catastrophic backtracking: a fragment repeated many times, then
 * a character that makes the whole match fail at the end.
 */
export function pathological (fragments: readonly string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...fragments), fc.integer({ min: 100, max: 20_000 }), fc.constantFrom('', '!', '\u0000', 'x', ' ', ':', '"'), fc.constantFrom('', ...fragments))
    .map(([frag, n, tail, head]) => head + frag.repeat(n) + tail)
}

/** Values of any JSON type, nested, with a bias towards small numbers, odd keys and strings. */
export function anyJson (depth = 3): fc.Arbitrary<unknown> {
  return fc.letrec<{ v: unknown }>((tie) => ({
    v: fc.oneof(
      { depthSize: 'small', withCrossShrink: true, maxDepth: depth },
      fc.constantFrom(null, true, false, 0, -1, 1, 65535, 65536, 1.5, 2 ** 53, '', 'None', '__proto__', 'constructor'),
      fc.integer(),
      fc.double(),
      anyText(20),
      fc.array(tie('v'), { maxLength: 4 }),
      fc.dictionary(fc.oneof(anyText(8), fc.constantFrom('__proto__', 'constructor', 'toString', 'name', 'kind', 'metadata', 'spec')), tie('v'), { maxKeys: 4 })
    )
  })).v
}

/**
 * Structured mutation of a valid document (JSON-like): each mutation picks a node (by
 * index into the document's nodes) and replaces it with `values`, removes it, adds a
 * field named from `keys` to it, or grows it into a longer list. Reaches the validators
 * with documents that are valid but for one or a few fields.
 */
export interface Mutation { readonly pick: number, readonly op: 'replace' | 'delete' | 'add' | 'grow', readonly key: string, readonly value: unknown }

export function mutations (keys: readonly string[], values: fc.Arbitrary<unknown>, opts: { minLength?: number, maxLength?: number } = {}): fc.Arbitrary<Mutation[]> {
  const one = fc.record({
    pick: fc.nat(),
    op: fc.constantFrom('replace', 'replace', 'replace', 'delete', 'add', 'grow') as fc.Arbitrary<Mutation['op']>,
    key: fc.oneof(fc.constantFrom(...keys, '__proto__', 'constructor', 'unknownField'), anyText(8)),
    value: values
  })
  return fc.array(one, { minLength: opts.minLength ?? 1, maxLength: opts.maxLength ?? 4 })
}

type Path = Array<string | number>

function nodePaths (v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at)
  if (Array.isArray(v)) v.forEach((x, i) => nodePaths(x, [...at, i], out))
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) nodePaths(x, [...at, k], out)
  return out
}

/** A copy of `doc` with `ms` applied. */
export function mutate (doc: unknown, ms: readonly Mutation[]): any {
  let root: any = structuredClone(doc)
  for (const mutation of ms) {
    // A copy of the value too: a generated value may be one shared constant ([] or {}),
    // which must neither change between cases nor end up inside itself.
    const m = { ...mutation, value: structuredClone(mutation.value) }
    const all = nodePaths(root)
    const path = all[m.pick % all.length]
    if (path.length === 0) { if (m.op === 'replace') root = m.value; continue }
    const parent = path.slice(0, -1).reduce((o: any, k) => o[k], root)
    const last = path[path.length - 1]
    const target = parent[last]
    switch (m.op) {
      case 'replace': parent[last] = m.value; break
      case 'delete': if (Array.isArray(parent)) parent.splice(last as number, 1); else delete parent[last]; break
      case 'add':
        if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, m.key, { value: m.value, enumerable: true, writable: true, configurable: true })
        else parent[last] = { [m.key]: m.value }
        break
      case 'grow': if (Array.isArray(target)) target.push(structuredClone(target[0] ?? m.value), m.value); else parent[last] = [target, m.value]; break
    }
  }
  return root
}

function envInt (name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}="${raw}" is not a positive number`)
  return n
}
