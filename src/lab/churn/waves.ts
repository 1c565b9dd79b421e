import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

// The pods a churn run creates and deletes: `count` meshed pods per wave on one node,
// each a small HTTP server (perl: a few MB and milliseconds to start) on port 8080 with
// a readiness probe, labelled app=churn — endpoints of the Service `churn` in
// examples/churn/churn.yaml — and running as the wave's own ServiceAccount. So each pod
// brings what a pod costs the agent: its listeners and capture, probe admission, an
// endpoint, and with each wave an identity (a certificate) that comes and goes. A wave
// is one file: one `ferry lab apply` makes all of it, one `ferry lab delete` removes it.

export interface Wave {
  readonly index: number
  readonly pods: readonly string[]
  /** The manifest file of its pods. */
  readonly file: string
}

/** Pod names of wave `index`: churn-<index>-<i>. */
export function wavePodNames (index: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `churn-${index}-${i}`)
}

/**
 * Answers every request 200 and closes, once it has read the whole request head: closing
 * with bytes unread would reset the connection (and the response with it).
 */
const HTTP_SERVER = '$s = IO::Socket::INET->new(LocalAddr => "0.0.0.0:8080", Listen => 64, ReuseAddr => 1) or die "listen: $!"; ' +
  'while (my $c = $s->accept) { my $r = ""; while ($r !~ /\\r\\n\\r\\n/) { last unless sysread($c, $r, 4096, length $r) } ' +
  'print $c "HTTP/1.1 200 OK\\r\\ncontent-length: 3\\r\\nconnection: close\\r\\n\\r\\nok\\n"; close $c }'

export function waveManifest (namespace: string, node: string, names: readonly string[], index: number): string {
  return names.map((name) => [
    'apiVersion: v1',
    'kind: Pod',
    `metadata: {name: ${name}, namespace: ${namespace}, labels: {app: churn}}`,
    'spec:',
    `  nodeName: ${node}`,
    '  terminationGracePeriodSeconds: 1',
    `  serviceAccountName: churn-${index}`,
    '  containers:',
    '    - name: main',
    `      command: [perl, -MIO::Socket::INET, -e, '${HTTP_SERVER}']`,
    '      ports: [{name: http, containerPort: 8080}]',
    '      readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 2}',
    ''
  ].join('\n')).join('---\n')
}

/** Writes wave `index`'s manifest in `dir`. */
export function writeWave (dir: string, index: number, count: number, namespace: string, node: string): Wave {
  const pods = wavePodNames(index, count)
  const file = join(dir, `wave-${index}.yaml`)
  writeFileSync(file, waveManifest(namespace, node, pods, index))
  return { index, pods, file }
}
