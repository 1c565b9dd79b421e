import t from 'tap'
import { Worker } from 'node:worker_threads'
import { concurrencyOf, concurrencySampler, threadCpu, threadSnapshot } from '../../benchmarks/lib/threads'

// The workers benchmark tells an agent's threads apart by /proc (Node 20 names them all
// "node"): the main thread by its tid, an event loop — a data-path worker — by waiting
// in epoll. Here on this process, with a real worker thread that does a fixed amount of
// work and then waits on its event loop. Guards the role read from wchan and the CPU
// delta per thread; and how many cores the threads ran on at once, from their on-CPU
// time per window. No timing is asserted.

t.test('a busy worker thread shows up as an event loop with its own CPU time', async (t) => {
  const before = threadSnapshot(process.pid)
  t.ok(before.length > 1, 'Node runs several threads')
  t.ok(before.every((x) => x.comm !== ''), 'every thread has a comm')
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads')
    let x = 0
    for (let i = 0; i < 4e7; i++) x = (x + i * 7) % 1000003
    parentPort.postMessage(x)
    setInterval(() => {}, 1000)
  `, { eval: true })
  t.teardown(async () => { await worker.terminate() })
  await new Promise((resolve) => worker.once('message', resolve))
  // Wait until the worker sleeps in its event loop (wchan shows epoll), bounded.
  let after = threadSnapshot(process.pid)
  for (let i = 0; i < 50; i++) {
    const busiest = threadCpu(process.pid, before, after).find((x) => x.tid !== process.pid)
    if (busiest?.role === 'event loop') break
    await new Promise((resolve) => setTimeout(resolve, 100))
    after = threadSnapshot(process.pid)
  }
  const threads = threadCpu(process.pid, before, after)
  const main = threads.find((x) => x.tid === process.pid)
  t.equal(main?.role, 'main')
  const busiest = threads.find((x) => x.tid !== process.pid)
  t.equal(busiest?.role, 'event loop', 'the worker waits in epoll')
  t.ok((busiest?.cpuSeconds ?? 0) > 0, 'its loop is counted to it')
  t.ok(threads.every((x, i) => i === 0 || threads[i - 1].cpuSeconds >= x.cpuSeconds), 'busiest first')
})

t.test('cores at once: the threads\' on-CPU time over each window, ÷ the window', async (t) => {
  const ns = (entries: Array<[number, number]>): Map<number, number> => new Map(entries)
  const c = concurrencyOf([
    { atMs: 0, ns: ns([[1, 0], [2, 0]]) },
    { atMs: 100, ns: ns([[1, 90e6], [2, 60e6]]) }, // 1.5 cores: both threads on CPU at once
    { atMs: 200, ns: ns([[1, 130e6], [3, 500e6]]) }, // thread 2 ended, 3 is new: only 1 counts
    { atMs: 300, ns: ns([[1, 150e6], [3, 520e6]]) }
  ])
  t.equal(c.windows, 3)
  t.equal(c.peakCores, 1.5)
  t.equal(c.windowsOverOneCore, 1)
  t.ok(Number.isNaN(concurrencyOf([{ atMs: 0, ns: ns([]) }]).peakCores), 'no window: not measured')
})

t.test('the sampler reads this process\'s threads from /proc', async (t) => {
  const sampler = concurrencySampler(process.pid, 20)
  let x = 0
  for (let i = 0; i < 2e7; i++) x = (x + i) % 7919
  await new Promise((resolve) => setTimeout(resolve, 100))
  const c = sampler.stop()
  t.ok(c.windows >= 1, `windows sampled (${x})`)
  t.ok(c.peakCores > 0, 'the busy loop shows')
})
