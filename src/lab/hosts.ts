import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { endpointsOf, selects, targetPortOn } from './endpoints'
import type { LabSpec } from './manifest/spec'
import { etcNetnsDir, netnsPath, type LabPlan } from './topology'

// Name resolution inside pods, without a DNS server: `ip netns exec` bind-mounts
// /etc/netns/<netns>/hosts over /etc/hosts, and an empty resolv.conf over the host's
// so that no lookup leaks to a real resolver. The files are rewritten in place (same
// inode), never renamed, because a bind mount keeps pointing at the old inode; never
// emptied meanwhile (writeInPlace).
//
// A Service is known as `svc.ns`, `svc.ns.svc` and `svc.ns.svc.cluster.local`, and as
// plain `svc` from its own namespace (Kubernetes' search path). With the mesh, names
// resolve to the cluster IPs, which the capture programs rewrite. Without it (--no-mesh)
// there is nothing to translate cluster IPs, so names resolve to the endpoints' pod
// IPs, like a headless Service: the "direct" baseline.

export const CLUSTER_DOMAIN = 'cluster.local'

export function serviceNames (name: string, namespace: string, fromNamespace: string): string[] {
  const qualified = [`${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`]
  return namespace === fromNamespace ? [name, ...qualified] : qualified
}

export function hostsFileFor (spec: LabSpec, plan: LabPlan, podIndex: number): string {
  const pod = plan.pods[podIndex]
  const specPod = spec.pods[podIndex]
  const lines = [
    `# Written by \`ferry lab\` (lab ${plan.name}); rewritten in place when the lab changes.`,
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${pod.ipv4}\t${pod.hostname}`,
    `${pod.ipv6}\t${pod.hostname}`
  ]
  spec.services.forEach((svc, i) => {
    const names = serviceNames(svc.name, svc.namespace, pod.namespace).join(' ')
    const vips = plan.services[i].clusterIPs
    if (plan.mesh && !svc.headless) {
      for (const ip of vips) lines.push(`${ip}\t${names}`)
    } else {
      // Headless, or no mesh: the endpoints themselves, in the service's family order.
      const eps = endpointsOf(spec, plan, svc)
      for (const family of svc.ipFamilies) for (const ep of eps) lines.push(`${family === 'IPv4' ? ep.ipv4 : ep.ipv6}\t${names}`)
    }
  })
  for (const alias of specPod.hostAliases) lines.push(`${alias.ip}\t${alias.hostnames.join(' ')}`)
  return lines.join('\n') + '\n'
}

/**
 * Without the mesh nothing translates a Service port to its target port: a client must
 * use the target port itself. One line per Service port where that differs.
 */
export function directModeWarnings (spec: LabSpec): string[] {
  const out: string[] = []
  for (const svc of spec.services) {
    const pods = spec.pods.filter((p) => selects(svc, p))
    for (const port of svc.ports) {
      const targets = new Set(pods.map((p) => targetPortOn(p, port.targetPort)).filter((t) => t !== null))
      if ([...targets].some((t) => t !== port.port)) {
        out.push(`Service ${svc.namespace}/${svc.name} port ${port.port} forwards to port ${[...targets].join('/')}: without the mesh, names resolve to pod IPs and clients must use that port`)
      }
    }
  }
  return out
}

export const RESOLV_CONF = '# `ferry lab`: no DNS server; names come from /etc/hosts only.\n'

/** After the lab's Services or pods changed: every pod's hosts file rewritten (those whose netns exists). */
export function rewriteHostsFiles (spec: LabSpec, plan: LabPlan): void {
  plan.pods.forEach((pod, i) => {
    if (existsSync(netnsPath(plan.paths, pod.netns))) writePodEtc(plan, pod.netns, hostsFileFor(spec, plan, i))
  })
}

/** Creates or rewrites (in place) the pod's /etc/netns files. */
export function writePodEtc (plan: LabPlan, netns: string, hosts: string): void {
  const dir = etcNetnsDir(plan.paths, netns)
  mkdirSync(dir, { recursive: true })
  writeInPlace(join(dir, 'hosts'), hosts)
  writeInPlace(join(dir, 'resolv.conf'), RESOLV_CONF)
}

/**
 * Keeps the inode that bind mounts point at. A pod resolves names while the lab changes
 * (glibc reads the file on every lookup), and a truncated file is a failed lookup: so a
 * file that already says `text` is left alone (pods created or deleted change no other
 * pod's file unless a Service changed), and a changed one is overwritten from the start
 * and only then cut to length — never empty in between.
 */
function writeInPlace (path: string, text: string): void {
  const bytes = Buffer.from(text)
  if (existsSync(path) && readFileSync(path).equals(bytes)) return
  const fd = openSync(path, existsSync(path) ? 'r+' : 'w', 0o644)
  try {
    writeSync(fd, bytes, 0, bytes.length, 0)
    ftruncateSync(fd, bytes.length)
  } finally {
    closeSync(fd)
  }
}
