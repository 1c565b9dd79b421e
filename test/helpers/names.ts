import { randomBytes } from 'node:crypto'

// Names of what a test makes on the host (labs, network namespaces, cgroups, bpffs
// directories): unique, so that test files can run at the same time, and prefixed, so
// that a leftover says which test made it.

/** `prefix`, a dash and 8 random hex digits, cut to `maxLength` (which shortens the random part). */
export function uniqueName (prefix: string, maxLength = Infinity): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, maxLength)
}

/** A lab name (at most 15 characters: src/lab/names.ts). */
export function uniqueLabName (prefix: string): string {
  return uniqueName(prefix, LAB_NAME_MAX)
}

const LAB_NAME_MAX = 15
