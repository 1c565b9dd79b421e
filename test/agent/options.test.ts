import t from 'tap'
import { resolve } from 'node:path'
import { parseAgentOptions } from '../../src/agent/options'
import { defaultWorkers } from '../../src/agent/worker-count'
import { HTTP_LIMIT_DEFAULTS } from '../../src/http/options'

const base = ['--node', 'n1', '--cluster-file', '/var/run/ferry/labs/x/cluster.json', '--pin-root', '/sys/fs/bpf/ferry-lab-x-n1']

t.test('valid options get defaults, an absolute cluster file, and are frozen', async (t) => {
  const o = parseAgentOptions(base, {})
  t.same(o, { node: 'n1', clusterFile: '/var/run/ferry/labs/x/cluster.json', kubernetes: null, drainGraceMs: 25_000, pinRoot: '/sys/fs/bpf/ferry-lab-x-n1', adminPort: 15020, readyPort: 15021, logLevel: 'info', clusterName: 'Kubernetes', clusterDomain: 'cluster.local', configDir: null, configFromController: false, configCache: null, identity: null, sockmap: true, workers: defaultWorkers(), adminTokenFile: null, kubeletCgroup: null, cni: null, handoffSocket: null, pathNormalization: { normalization: 'MERGE_SLASHES', escapedSlashes: 'KEEP_UNCHANGED' }, tracing: null, httpLimits: HTTP_LIMIT_DEFAULTS })
  t.ok(Object.isFrozen(o))
  t.equal(parseAgentOptions([...base, '--sockmap', 'off']).sockmap, false, '--sockmap off turns the shortcut off')
  t.equal(parseAgentOptions([...base, '--handoff-socket', '/var/run/ferry/handoff.sock']).handoffSocket, '/var/run/ferry/handoff.sock')
  t.same(parseAgentOptions([...base, '--path-normalization', 'DECODE_AND_MERGE_SLASHES']).pathNormalization, { normalization: 'DECODE_AND_MERGE_SLASHES', escapedSlashes: 'UNESCAPE_AND_FORWARD' })
  t.same(parseAgentOptions([...base, '--path-escaped-slashes', 'REJECT_REQUEST']).pathNormalization, { normalization: 'MERGE_SLASHES', escapedSlashes: 'REJECT_REQUEST' })
  t.throws(() => parseAgentOptions([...base, '--path-normalization', 'merge']), { code: 'FERRY_ERR_INVALID_ARG', message: /--path-normalization.*"merge" is not one of NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES/ })
  const o2 = parseAgentOptions(['--node', 'node-2.example', '--cluster-file', 'rel/c.json', '--pin-root', '/p', '--admin-port', '0', '--ready-port', '0', '--log-level', 'debug'])
  t.equal(o2.clusterFile, resolve('rel/c.json'))
  t.equal(o2.adminPort, 0)
  t.equal(o2.readyPort, 0, 'both 0 is allowed: each gets a free port')
  t.equal(o2.logLevel, 'debug')
  t.equal(parseAgentOptions([...base, '--cluster-name', 'east-1']).clusterName, 'east-1', '--cluster-name names the cluster in Istio\'s metrics')
  t.equal(parseAgentOptions([...base, '--cluster-domain', 'corp.internal']).clusterDomain, 'corp.internal', '--cluster-domain: the Services\' DNS domain')
})

t.test('invalid options are FERRY_ERR_INVALID_ARG naming the option and what is expected', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--cluster-file', '/c', '--pin-root', '/p'], /--node is required/],
    [['--node', 'n1', '--pin-root', '/p'], /--cluster-file or --kubernetes is required/],
    [['--node', 'n1', '--cluster-file', '/c'], /--pin-root is required/],
    [[...base, '--node', 'Node_1'], /--node "Node_1" is invalid: expected a Kubernetes node name/],
    [['--node', 'n1', '--cluster-file', '/c', '--pin-root', 'relative/pins'], /--pin-root "relative\/pins" is invalid: expected an absolute path/],
    [[...base, '--admin-port', '70000'], /--admin-port "70000" is invalid: expected a port number/],
    [[...base, '--cluster-name', 'a b'], /--cluster-name "a b" is invalid: expected a name/],
    [[...base, '--cluster-domain', 'Cluster.Local'], /--cluster-domain "Cluster.Local" is invalid: expected a DNS domain/],
    [[...base, '--cluster-domain', 'cluster..local'], /--cluster-domain "cluster..local" is invalid/],
    [[...base, '--ready-port', 'http'], /--ready-port "http" is invalid/],
    [[...base, '--admin-port', '9000', '--ready-port', '9000'], /--ready-port "9000" is invalid: expected a port other than --admin-port 9000/],
    [[...base, '--log-level', 'loud'], /--log-level "loud" is invalid: expected one of fatal, error/],
    [[...base, '--sockmap', 'yes'], /--sockmap "yes" is invalid: expected "on" or "off"/],
    [[...base, '--handoff-socket', 'run/handoff.sock'], /--handoff-socket "run\/handoff.sock" is invalid: expected an absolute file path of at most 107 bytes/],
    [[...base, '--handoff-socket', `/${'x'.repeat(107)}`], /--handoff-socket "\/x+" is invalid/],
    [[...base, '--nodes', 'n1'], /Unknown option '--nodes'/],
    [[...base, 'extra'], /Unexpected argument 'extra'/],
    [[...base, '--node'], /--node/]
  ]
  for (const [argv, re] of cases) {
    t.throws(() => parseAgentOptions(argv, {}), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
  }
})

const ca = ['--ca-address', '172.30.0.254:15012', '--ca-root', '/state/x/ca/root-cert.pem', '--ca-token-file', 'tokens/n1.token']

t.test('--http-*: every HTTP limit settable, counts and durations, validated by name', async (t) => {
  const o = parseAgentOptions([...base, '--http-max-header-bytes', '8192', '--http-max-headers', '20', '--http-header-timeout', '2s', '--http-idle-timeout', '1m',
    '--http-max-concurrent-streams', '50', '--http-max-resets-per-second', '10', '--http-max-refused-streams', '5', '--http-upstream-idle-timeout', '30s'], {})
  t.same(o.httpLimits, { maxHeaderBytes: 8192, maxHeaders: 20, headerTimeoutMs: 2000, idleTimeoutMs: 60_000, maxConcurrentStreams: 50, maxResetsPerSecond: 10, maxRefusedStreams: 5, upstreamIdleTimeoutMs: 30_000 })
  t.ok(Object.isFrozen(o.httpLimits))
  t.same(parseAgentOptions([...base, '--http-max-headers', '7'], {}).httpLimits, { ...HTTP_LIMIT_DEFAULTS, maxHeaders: 7 }, 'the others keep their defaults')
  const cases: Array<[string[], RegExp]> = [
    [['--http-max-headers', '0'], /--http-max-headers "0" is invalid: expected an integer from 1 to 2147483647/],
    [['--http-max-header-bytes', '60k'], /--http-max-header-bytes "60k" is invalid/],
    [['--http-max-concurrent-streams', '2147483648'], /--http-max-concurrent-streams "2147483648" is invalid/],
    [['--http-header-timeout', 'soon'], /--http-header-timeout "soon" is invalid: expected a duration/],
    [['--http-idle-timeout', '0s'], /--http-idle-timeout "0s" is invalid/],
    [['--http-max-header'], /Unknown option '--http-max-header'/]
  ]
  for (const [argv, re] of cases) t.throws(() => parseAgentOptions([...base, ...argv], {}), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
})

t.test('CA options: all three together, with a default trust domain and lifetime, frozen', async (t) => {
  const o = parseAgentOptions([...base, ...ca])
  t.same(o.identity, { caAddress: '172.30.0.254:15012', caRoot: '/state/x/ca/root-cert.pem', caTokenFile: resolve('tokens/n1.token'), trustDomain: 'cluster.local', certTtlMs: 86_400_000, tunnelPort: 15008 })
  t.ok(Object.isFrozen(o.identity))
  const o2 = parseAgentOptions([...base, ...ca, '--trust-domain', 'example.org', '--cert-ttl', '6s', '--ca-address', '[fd30::fe]:15012'])
  t.match(o2.identity, { trustDomain: 'example.org', certTtlMs: 6000, caAddress: '[fd30::fe]:15012' })
  t.equal(parseAgentOptions([...base, ...ca, '--ca-address', 'ferry-controller.ferry-system.svc:15012']).identity?.caAddress, 'ferry-controller.ferry-system.svc:15012')
  t.equal(parseAgentOptions([...base, ...ca, '--tunnel-port', '0']).identity?.tunnelPort, 0, '--tunnel-port 0: any free port (tests)')
})

t.test('--config-source controller: policies from the controller, with the CA options and without --config-dir', async (t) => {
  t.equal(parseAgentOptions([...base, ...ca, '--config-source', 'controller']).configFromController, true)
  t.equal(parseAgentOptions([...base, '--config-dir', '/cfg']).configFromController, false)
  const cases: Array<[string[], RegExp]> = [
    [[...base, ...ca, '--config-source', 'files'], /--config-source "files" is invalid: expected "controller"/],
    [[...base, '--config-source', 'controller'], /--config-source controller needs the CA options/],
    [[...base, ...ca, '--config-source', 'controller', '--config-dir', '/cfg'], /--config-source controller and --config-dir exclude each other/]
  ]
  for (const [argv, re] of cases) {
    t.throws(() => parseAgentOptions(argv, {}), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
  }
})

t.test('CA options: a partial set, a bad address, trust domain or lifetime, or extras without a CA are refused by name', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--ca-address', '172.30.0.254:15012'], /--ca-address also needs --ca-root and --ca-token-file \(the CA options go together\)/],
    [[...base, '--ca-root', '/r', '--ca-token-file', '/t'], /--ca-root, --ca-token-file also need --ca-address/],
    [[...base, '--cert-ttl', '6s'], /--cert-ttl needs a CA \(--ca-address, --ca-root, --ca-token-file\)/],
    [[...base, '--trust-domain', 'example.org'], /--trust-domain needs a CA/],
    [[...base, '--tunnel-port', '15008'], /--tunnel-port needs a CA/],
    [[...base, ...ca, '--tunnel-port', '70000'], /--tunnel-port "70000" is invalid: expected a port number/],
    [[...base, ...ca, '--ca-address', '172.30.0.254'], /--ca-address "172\.30\.0\.254" is invalid: expected HOST:PORT/],
    [[...base, ...ca, '--ca-address', '172.30.0.254:0'], /--ca-address "172\.30\.0\.254:0" is invalid/],
    [[...base, ...ca, '--ca-address', '[1.2.3.4]:15012'], /--ca-address "\[1\.2\.3\.4\]:15012" is invalid/],
    [[...base, ...ca, '--trust-domain', 'Example.ORG:443'], /--trust-domain "Example\.ORG:443" is invalid: expected a trust domain name/],
    [[...base, ...ca, '--cert-ttl', 'soon'], /--cert-ttl "soon" is invalid: expected a duration/],
    [[...base, ...ca, '--cert-ttl', '500ms'], /--cert-ttl "500ms" is invalid: expected a duration from 1s to 365d/]
  ]
  for (const [argv, re] of cases) {
    t.throws(() => parseAgentOptions(argv), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
  }
})

const kube = ['--node', 'n1', '--kubernetes', '--pin-root', '/sys/fs/bpf/ferry']

t.test('--kubernetes: the API source and the kubelet locator with the DaemonSet\'s host mounts by default, no cluster file', async (t) => {
  const o = parseAgentOptions(kube, {})
  t.equal(o.clusterFile, null)
  t.same(o.kubernetes, { kubeconfig: null, hostProc: '/host/proc', cgroupRoot: '/host/sys/fs/cgroup' })
  t.ok(Object.isFrozen(o.kubernetes))
  const o2 = parseAgentOptions([...kube, '--kubeconfig', 'lab/kubeconfig', '--host-proc', '/proc', '--cgroup-root', '/sys/fs/cgroup/unified'], {})
  t.same(o2.kubernetes, { kubeconfig: resolve('lab/kubeconfig'), hostProc: '/proc', cgroupRoot: '/sys/fs/cgroup/unified' })
})

t.test('--node defaults to $NODE_NAME (the DaemonSet\'s downward API); --node wins', async (t) => {
  const argv = ['--kubernetes', '--pin-root', '/p']
  t.equal(parseAgentOptions(argv, { NODE_NAME: 'worker-3' }).node, 'worker-3')
  t.equal(parseAgentOptions([...argv, '--node', 'n1'], { NODE_NAME: 'worker-3' }).node, 'n1')
  t.throws(() => parseAgentOptions(argv, {}), { code: 'FERRY_ERR_INVALID_ARG', message: /--node is required \(or \$NODE_NAME\)/ })
  t.throws(() => parseAgentOptions(argv, { NODE_NAME: 'Bad_Name' }), { code: 'FERRY_ERR_INVALID_ARG', message: /--node "Bad_Name" is invalid/ }, 'the variable is validated like the option')
})

t.test('--cluster-file and --kubernetes: exactly one; the kubelet locator\'s options need --kubernetes', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [[...base, '--kubernetes'], /--cluster-file and --kubernetes are mutually exclusive/],
    [['--node', 'n1', '--pin-root', '/p'], /--cluster-file or --kubernetes is required/],
    [[...base, '--kubeconfig', '/k'], /--kubeconfig needs --kubernetes/],
    [[...base, '--host-proc', '/proc'], /--host-proc needs --kubernetes/],
    [[...base, '--cgroup-root', '/sys/fs/cgroup'], /--cgroup-root needs --kubernetes/],
    [[...kube, '--host-proc', 'proc'], /--host-proc "proc" is invalid: expected an absolute path/],
    [[...kube, '--cgroup-root', 'cg'], /--cgroup-root "cg" is invalid: expected an absolute path/],
    [[...kube, '--kubernetes=yes'], /--kubernetes/]
  ]
  for (const [argv, re] of cases) {
    t.throws(() => parseAgentOptions(argv, {}), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
  }
})

t.test('--kubelet-cgroup: an absolute cgroup directory in either mode; "auto" only with --kubernetes', async (t) => {
  t.equal(parseAgentOptions([...base, '--kubelet-cgroup', '/sys/fs/cgroup/lab/n1/kubelet/']).kubeletCgroup, '/sys/fs/cgroup/lab/n1/kubelet', 'normalized')
  t.equal(parseAgentOptions(['--node', 'n1', '--kubernetes', '--pin-root', '/p', '--kubelet-cgroup', 'auto']).kubeletCgroup, 'auto')
  t.equal(parseAgentOptions(['--node', 'n1', '--kubernetes', '--pin-root', '/p', '--kubelet-cgroup', '/host/sys/fs/cgroup/system.slice/kubelet.service']).kubeletCgroup, '/host/sys/fs/cgroup/system.slice/kubelet.service')
  t.throws(() => parseAgentOptions([...base, '--kubelet-cgroup', 'auto']), { code: 'FERRY_ERR_INVALID_ARG', message: /--kubelet-cgroup auto needs --kubernetes/ })
  t.throws(() => parseAgentOptions([...base, '--kubelet-cgroup', 'system.slice/kubelet.service']), { code: 'FERRY_ERR_INVALID_ARG', message: /--kubelet-cgroup "system.slice\/kubelet.service" is invalid: expected the kubelet's cgroup v2 directory \(an absolute path\), or "auto"/ })
})

t.test('--drain-grace: a duration, 25s by default (below the DaemonSet\'s 30 s termination grace), 0 allowed', async (t) => {
  t.equal(parseAgentOptions(base, {}).drainGraceMs, 25_000)
  t.equal(parseAgentOptions([...base, '--drain-grace', '5s'], {}).drainGraceMs, 5000)
  t.equal(parseAgentOptions([...base, '--drain-grace', '0s'], {}).drainGraceMs, 0)
  t.throws(() => parseAgentOptions([...base, '--drain-grace', 'soon'], {}), { code: 'FERRY_ERR_INVALID_ARG', message: /--drain-grace "soon" is invalid/ })
  t.throws(() => parseAgentOptions([...base, '--drain-grace', '2h'], {}), { code: 'FERRY_ERR_INVALID_ARG', message: /--drain-grace "2h" is invalid: expected a duration up to 1h/ })
})

t.test('--admin-token-file: an absolute path to the token that opens /debug/*', async (t) => {
  t.equal(parseAgentOptions([...base, '--admin-token-file', 'tokens/admin.token']).adminTokenFile, resolve('tokens/admin.token'))
})

t.test('--cni-*: socket and state file together, the entry\'s defaults, the CNI directories, the DaemonSet from $POD_NAMESPACE', async (t) => {
  const cni = ['--cni-socket', '/var/run/ferry/cni.sock', '--cni-state-file', '/var/run/ferry/cni-state.json']
  t.same(parseAgentOptions([...base, ...cni]).cni, {
    entry: { socket: '/var/run/ferry/cni.sock', stateFile: '/var/run/ferry/cni-state.json', timeoutMs: 30_000, logFile: null },
    confDir: null,
    binDir: null,
    daemonSet: null
  })
  const k8s = ['--node', 'n1', '--kubernetes', '--pin-root', '/p']
  const full = parseAgentOptions([...k8s, ...cni, '--cni-timeout', '10s', '--cni-log-file', '/var/run/ferry/cni.log', '--cni-conf-dir', '/host/etc/cni/net.d', '--cni-bin-dir', '/host/opt/cni/bin', '--cni-daemonset', 'ferry-agent'], { POD_NAMESPACE: 'ferry-system' })
  t.same(full.cni, {
    entry: { socket: '/var/run/ferry/cni.sock', stateFile: '/var/run/ferry/cni-state.json', timeoutMs: 10_000, logFile: '/var/run/ferry/cni.log' },
    confDir: '/host/etc/cni/net.d',
    binDir: '/host/opt/cni/bin',
    daemonSet: { namespace: 'ferry-system', name: 'ferry-agent' }
  })
  t.ok(Object.isFrozen(full.cni) && Object.isFrozen(full.cni?.entry))
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [[...base, '--cni-socket', '/s'], {}, /--cni-socket need.* --cni-socket and --cni-state-file/],
    [[...base, '--cni-conf-dir', '/etc/cni/net.d'], {}, /--cni-conf-dir needs --cni-socket and --cni-state-file/],
    [[...base, ...cni, '--cni-socket', 'rel.sock'], {}, /--cni-socket "rel.sock" is invalid: expected an absolute path/],
    [[...base, '--cni-socket', `/${'x'.repeat(120)}`, '--cni-state-file', '/s'], {}, /a unix socket path has at most 107 bytes/],
    [[...base, ...cni, '--cni-timeout', '10m'], {}, /--cni-timeout "10m" is invalid: expected a duration from 1ms to 5m/],
    [[...base, ...cni, '--cni-bin-dir', '/opt/cni/bin'], {}, /--cni-bin-dir needs --cni-conf-dir/],
    [[...base, ...cni, '--cni-conf-dir', '/etc/cni/net.d', '--cni-daemonset', 'ferry-agent'], { POD_NAMESPACE: 'x' }, /--cni-daemonset needs --kubernetes/],
    [[...k8s, ...cni, '--cni-daemonset', 'ferry-agent'], { POD_NAMESPACE: 'x' }, /--cni-daemonset needs --cni-conf-dir/],
    [[...k8s, ...cni, '--cni-conf-dir', '/etc/cni/net.d', '--cni-daemonset', 'ferry-agent'], {}, /--cni-daemonset needs \$POD_NAMESPACE/],
    [[...k8s, ...cni, '--cni-conf-dir', '/etc/cni/net.d', '--cni-daemonset', 'Ferry_Agent'], { POD_NAMESPACE: 'x' }, /--cni-daemonset "Ferry_Agent" is invalid: expected a DaemonSet name/]
  ]
  for (const [argv, env, re] of cases) t.throws(() => parseAgentOptions(argv, env), { code: 'FERRY_ERR_INVALID_ARG', message: re }, argv.join(' '))
})

// The saved configuration: where the DaemonSet keeps it by default, and never by default
// elsewhere (agents run by tests and the lab would share one file).
t.test('--config-cache: a path or none; the DaemonSet\'s default only with --kubernetes and a configuration source', async (t) => {
  const kube = ['--node', 'n1', '--kubernetes', '--pin-root', '/p']
  t.equal(parseAgentOptions([...kube, ...ca, '--config-source', 'controller']).configCache, '/var/lib/ferry/config-cache.json')
  t.equal(parseAgentOptions([...kube, ...ca, '--config-source', 'controller', '--config-cache', 'none']).configCache, null)
  t.equal(parseAgentOptions([...kube]).configCache, null, 'no configuration source: nothing to keep')
  t.equal(parseAgentOptions([...base, '--config-dir', '/cfg']).configCache, null, 'not by default outside the DaemonSet')
  t.equal(parseAgentOptions([...base, '--config-dir', '/cfg', '--config-cache', 'state/n1.json']).configCache, resolve('state/n1.json'))
  t.throws(() => parseAgentOptions([...base, '--config-cache', '/x.json']), { code: 'FERRY_ERR_INVALID_ARG', message: /--config-cache needs a configuration source/ })
  t.throws(() => parseAgentOptions([...base, '--config-dir', '/cfg', '--config-cache', '/var/lib/ferry/']), { code: 'FERRY_ERR_INVALID_ARG', message: /--config-cache "\/var\/lib\/ferry\/" is invalid: expected a file path/ })
})
