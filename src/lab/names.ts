import { createHash } from 'node:crypto'
import { ferryError } from '../errors'

// Names of everything a lab creates on the host. Every host-wide name carries the lab's
// prefix, so that `down` can sweep a lab's leftovers by name even when its state file
// is lost, and two labs never touch each other's objects.
//
//   netns           fl-<lab>-u (underlay), fl-<lab>-<node>, fl-<lab>-<ns>-<pod>
//   /etc/netns      /etc/netns/<netns>/{hosts,resolv.conf}
//   cgroup v2       <cgroup2>/ferry-lab-<lab>/…
//   bpffs pin root  /sys/fs/bpf/ferry-lab-<lab>-<node>
//
// Lab names may contain '-', so lab "a" could mistake lab "a-b"'s objects for its own:
// `up` refuses a name that is a dash-prefix of a live lab's name (or the other way
// round), and the sweep skips names that belong to a longer live lab.

export const LAB_NAME_RE = /^[a-z0-9][a-z0-9-]{0,14}$/
export const DEFAULT_LAB_NAME = 'default'
export const NETNS_PREFIX = 'fl-'
export const CGROUP_PREFIX = 'ferry-lab-'
export const PIN_PREFIX = 'ferry-lab-'
/** Longest netns name the lab makes; longer ones are shortened with a hash. */
export const MAX_NETNS_NAME = 48
/** Linux IFNAMSIZ - 1. */
export const MAX_IFNAME = 15

export function checkLabName (name: string): string {
  if (!LAB_NAME_RE.test(name)) {
    throw ferryError('FERRY_ERR_INVALID_ARG', `invalid lab name "${name}": use 1-15 characters of a-z, 0-9 and '-', starting with a letter or digit`)
  }
  return name
}

export function netnsPrefix (lab: string): string { return `${NETNS_PREFIX}${lab}-` }
export function underlayNetnsName (lab: string): string { return `${netnsPrefix(lab)}u` }
export function cgroupRootName (lab: string): string { return `${CGROUP_PREFIX}${lab}` }
export function pinDirName (lab: string, node: string): string { return `${PIN_PREFIX}${lab}-${node}` }

/** True when the two labs' names could claim the same objects by prefix. */
export function labNamesOverlap (a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}-`) || b.startsWith(`${a}-`)
}

/**
 * Does a name made with `prefixOf(lab)` belong to `lab`, given the other labs that
 * exist? A name also matching a longer lab's prefix belongs to that lab.
 */
export function ownsName (name: string, lab: string, otherLabs: readonly string[], prefixOf: (lab: string) => string): boolean {
  if (!name.startsWith(prefixOf(lab))) return false
  return !otherLabs.some((other) => other !== lab && other.length > lab.length && name.startsWith(prefixOf(other)))
}

export function shortHash (text: string, length = 6): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length)
}

/**
 * Readable, unique network namespace names for a lab's nodes and pods. A name that is
 * too long, or that two objects would share (node "a-b" and pod a/b, say), is cut and
 * given a hash of the object's identity. The underlay's name is reserved first.
 */
export function allocateNetnsNames (lab: string, objects: ReadonlyArray<{ id: string, readable: string }>): Map<string, string> {
  const prefix = netnsPrefix(lab)
  const taken = new Map<string, number>()
  const wanted = objects.map((o) => `${prefix}${sanitize(o.readable)}`)
  for (const n of [underlayNetnsName(lab), ...wanted]) taken.set(n, (taken.get(n) ?? 0) + 1)
  const out = new Map<string, string>()
  objects.forEach((o, i) => {
    let name = wanted[i]
    if (name.length > MAX_NETNS_NAME || (taken.get(name) ?? 0) > 1) {
      const hash = shortHash(o.id, 8)
      name = `${name.slice(0, MAX_NETNS_NAME - hash.length - 1)}-${hash}`
    }
    out.set(o.id, name)
  })
  return out
}

/** A network namespace name for an object added to a running lab: readable unless too long or `taken`, then hashed like allocateNetnsNames does. */
export function additionalNetnsName (lab: string, id: string, readable: string, taken: ReadonlySet<string>): string {
  const name = `${netnsPrefix(lab)}${sanitize(readable)}`
  if (name.length <= MAX_NETNS_NAME && !taken.has(name)) return name
  const hash = shortHash(id, 8)
  return `${name.slice(0, MAX_NETNS_NAME - hash.length - 1)}-${hash}`
}

function sanitize (s: string): string {
  // Kubernetes names are DNS labels/subdomains already; keep netns names shell-friendly anyway.
  return s.replace(/[^a-z0-9.-]/g, '-')
}
