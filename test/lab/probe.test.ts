import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { Prober } from '../../src/lab/probe'
import { ROOT_ONLY } from './helpers'
import { uniqueLabName } from '../helpers/names'

// Probes made inside a namespace through the native addon, from a process that stays
// in the host's namespace.

t.test('tcp and http probes reach a server inside another namespace, and only there', ROOT_ONLY, async (t) => {
  const netns = `fl-${uniqueLabName('prb')}-t`
  const path = `/var/run/netns/${netns}`
  t.equal(spawnSync('ip', ['netns', 'add', netns]).status, 0)
  t.teardown(() => { spawnSync('ip', ['netns', 'delete', netns]) })
  spawnSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up'])
  // nsenter execs node (same pid, so the kill below reaches it); it also exits by itself after 20 s.
  const server = spawn('nsenter', [`--net=${path}`, '--', process.execPath, '-e',
    'setTimeout(() => process.exit(0), 20000); require("http").createServer((q, s) => s.end(`{"path":"${q.url}"}`)).listen(15999, "127.0.0.1", () => console.log("up"))'],
  { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => { server.kill('SIGKILL') })
  await new Promise((resolve) => server.stdout.once('data', resolve))

  const prober = new Prober()
  t.teardown(() => { prober.close() })
  t.equal(await prober.tcp(path, '127.0.0.1', 15999, 1000), true)
  t.equal(await prober.tcp(path, '127.0.0.1', 15998, 1000), false, 'a closed port')
  // Regression: with `agent: false` Node ignored createConnection and probed the host's namespace.
  t.same(await prober.httpGet(path, '127.0.0.1', 15999, '/healthz/ready', 1000), { status: 200, body: '{"path":"/healthz/ready"}' })
  t.equal(await prober.httpGet(path, '127.0.0.1', 15998, '/', 1000), null)
  t.equal(await prober.tcp(path, '::1', 15999, 1000), false, 'IPv6 loopback has no listener')
})
