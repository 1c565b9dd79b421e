import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { KERNEL_BTF } from '../../../src/capture/sk-msg-fields'
import type { Teardownable } from './pod-env'

/**
 * A copy of the running kernel's BTF in which `name` (a member or function name) is
 * renamed wherever it is used: a kernel that lacks it. Removed by teardown.
 */
export function kernelBtfWithout (t: Teardownable, name: string): string {
  const blob = Buffer.from(readFileSync(KERNEL_BTF))
  const at = blob.indexOf(Buffer.from(`\0${name}\0`, 'latin1'))
  if (at < 0) throw new Error(`${name} is not in the kernel's BTF`)
  blob[at + name.length] ^= 0x20 // the last letter's case: same length, another name
  const dir = mkdtempSync(join(tmpdir(), 'fct-btf-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'vmlinux'), blob)
  return join(dir, 'vmlinux')
}
