import { ferryError } from '../errors'

// The strategic merge patch of kubectl and kustomize, for the fields Ferry's overlays
// patch. Maps merge key by key (null deletes a key); a list of objects with a merge key
// (containers by name, volumeMounts by mountPath, …) merges element by element; any
// other list is replaced whole, as the Kubernetes schemas say for those fields. Patch
// directives ($patch, $retainKeys, $setElementOrder…) are refused: an overlay that needs
// them needs kustomize itself. test/install/manifests.test.ts checks that the result equals
// `kubectl kustomize` for every overlay.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type JsonObject = { [k: string]: Json }

/** Merge keys from the Kubernetes API's x-kubernetes-patch-merge-key, by field name. */
const MERGE_KEYS: Readonly<Record<string, string>> = Object.freeze({
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  imagePullSecrets: 'name',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
  conditions: 'type'
})

/** `ports` merges by containerPort in a container and by port in a Service. */
function mergeKey (field: string, path: readonly string[]): string | undefined {
  if (field === 'ports') return path.includes('containers') || path.includes('initContainers') ? 'containerPort' : 'port'
  return MERGE_KEYS[field]
}

export function strategicMerge<T> (target: T, patch: unknown, where: string): T {
  return mergeValue(target as Json, patch as Json, [], where) as T
}

function mergeValue (target: Json, patch: Json, path: string[], where: string): Json {
  if (!isObject(patch) || !isObject(target)) return clone(patch)
  const out: JsonObject = { ...target }
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) throw ferryError('FERRY_ERR_CONFIG', `${where}: ${[...path, key].join('.')}: patch directive "${key}" is not supported by Ferry's renderer; use kustomize`)
    if (value === null) { delete out[key]; continue }
    const current = out[key]
    const mk = mergeKey(key, path)
    if (Array.isArray(value) && Array.isArray(current) && mk !== undefined) {
      out[key] = mergeList(current, value, mk, [...path, key], where)
    } else {
      out[key] = current === undefined ? clone(value) : mergeValue(current, value, [...path, key], where)
    }
  }
  return out
}

/** Elements the patch adds come first, in the patch's order: where kustomize (kyaml) puts them. */
function mergeList (target: Json[], patch: Json[], key: string, path: string[], where: string): Json[] {
  const out = target.map(clone)
  const added: Json[] = []
  for (const item of patch) {
    if (!isObject(item) || item[key] === undefined) {
      throw ferryError('FERRY_ERR_CONFIG', `${where}: ${path.join('.')}: every element needs its merge key "${key}"`)
    }
    const at = out.findIndex((e) => isObject(e) && e[key] === item[key])
    if (at < 0) added.push(clone(item))
    else out[at] = mergeValue(out[at], item, path, where)
  }
  return [...added, ...out]
}

function isObject (v: Json | undefined): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

function clone (v: Json): Json {
  return v === null || typeof v !== 'object' ? v : JSON.parse(JSON.stringify(v))
}
