import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { FerryError, ferryError } from '../errors'
import type { NativeAddon } from './native'

// Loads build/Release/ferry_native.node once, on first use, and hands it the
// FerryError class so native failures arrive typed.

/** The repository (or installed package) root: the nearest folder with package.json. */
export const REPO_ROOT = findRoot(__dirname)
export const NATIVE_ADDON_PATH = join(REPO_ROOT, 'build', 'Release', 'ferry_native.node')

let addon: NativeAddon | undefined

export function native (): NativeAddon {
  if (addon === undefined) addon = loadNative(NATIVE_ADDON_PATH)
  return addon
}

/** Loads an addon file; exported for the test of the "not built" error. */
export function loadNative (path: string): NativeAddon {
  if (!existsSync(path)) {
    throw ferryError('FERRY_ERR_NATIVE_MISSING', `the native addon is not built (${path}): run \`npm run build:native\``)
  }
  let loaded: NativeAddon
  try {
    loaded = require(path) as NativeAddon
  } catch (err) {
    throw ferryError('FERRY_ERR_NATIVE_MISSING', `the native addon at ${path} cannot be loaded: ${(err as Error).message}`, { cause: err })
  }
  loaded.setErrorClass(FerryError)
  return loaded
}

function findRoot (start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir
    if (dirname(dir) === dir) return start
  }
}
