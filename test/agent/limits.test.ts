import t from 'tap'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openFilesLimit, pendingLimitFor } from '../../src/agent/fd-limit'
import { bufferBudgetFor, memoryLimit } from '../../src/agent/memory-limit'

// The agent sizes the tunnel's node-wide bounds from its own limits: unverified
// connections to a quarter of the open-files limit (at most 1,024), the buffer budget to
// half its cgroup's memory limit (at most 256 MiB) — read from /proc and cgroupfs as
// the kernel writes them.

const MiB = 1024 * 1024
const dir = mkdtempSync(join(tmpdir(), 'ferry-limits-'))
t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })

t.test('the open-files limit, and the pending bound it gives', async (t) => {
  const file = join(dir, 'limits')
  writeFileSync(file, 'Limit                     Soft Limit           Hard Limit           Units     \nMax open files            1024                 524288               files     \n')
  t.equal(openFilesLimit(file), 1024)
  writeFileSync(file, 'Max open files            unlimited            unlimited            files     \n')
  t.equal(openFilesLimit(file), null)
  t.equal(openFilesLimit(join(dir, 'absent')), null)
  t.ok(openFilesLimit() !== null, 'this process\'s own is read')
  t.equal(pendingLimitFor(1024), 256, 'a quarter of a small limit')
  t.equal(pendingLimitFor(1_048_576), 1024, 'at most 1,024')
  t.equal(pendingLimitFor(null), 1024)
})

t.test('the memory limit (cgroup v2, hybrid, v1), and the buffer budget it gives', async (t) => {
  const root = join(dir, 'cg')
  const proc = join(dir, 'cgroup')
  mkdirSync(join(root, 'kubepods', 'pod1', 'agent'), { recursive: true })
  writeFileSync(proc, '0::/kubepods/pod1/agent\n')
  writeFileSync(join(root, 'kubepods', 'pod1', 'agent', 'memory.max'), `${512 * MiB}\n`)
  t.equal(memoryLimit(proc, root), 512 * MiB, 'v2')
  t.equal(bufferBudgetFor(512 * MiB), 256 * MiB, 'the DaemonSet\'s 512 Mi → 256 MiB')
  t.equal(bufferBudgetFor(384 * MiB), 192 * MiB, 'half a smaller limit')
  writeFileSync(join(root, 'kubepods', 'pod1', 'agent', 'memory.max'), 'max\n')
  t.equal(memoryLimit(proc, root), null, 'no limit')
  rmSync(join(root, 'kubepods'), { recursive: true })
  mkdirSync(join(root, 'unified', 'lab', 'agent'), { recursive: true })
  writeFileSync(proc, '0::/lab/agent\n')
  writeFileSync(join(root, 'unified', 'lab', 'agent', 'memory.max'), `${256 * MiB}\n`)
  t.equal(memoryLimit(proc, root), 256 * MiB, 'hybrid mode: the unified hierarchy')
  mkdirSync(join(root, 'memory', 'docker', 'x'), { recursive: true })
  writeFileSync(proc, '4:memory:/docker/x\n0::/\n')
  writeFileSync(join(root, 'memory', 'docker', 'x', 'memory.limit_in_bytes'), `${1024 * MiB}\n`)
  t.equal(memoryLimit(proc, root), 1024 * MiB, 'v1')
  writeFileSync(join(root, 'memory', 'docker', 'x', 'memory.limit_in_bytes'), '9223372036854771712\n')
  t.equal(memoryLimit(proc, root), null, 'v1 without a limit')
  t.equal(bufferBudgetFor(null), 256 * MiB, 'no limit: the default budget')
  t.equal(bufferBudgetFor(4096 * MiB), 256 * MiB, 'at most the default')
  t.equal(bufferBudgetFor(64 * MiB), 64 * MiB, 'never below one session\'s budget')
})
