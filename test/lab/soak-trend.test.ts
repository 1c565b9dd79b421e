import t from 'tap'
import { floorOf, judgeTrend, linearFit } from '../../src/lab/soak/trend'

// The soak's "no growth trend" verdict (src/lab/soak/trend.ts): a resource grows when its
// least-squares slope is significant (above twice its standard error) and material (the
// fitted rise over the run above the floor).

t.test('the least-squares slope and its standard error', async (t) => {
  t.same(linearFit([5, 7, 9, 11]), { slope: 2, stdError: 0 }, 'a straight line: exact, no error')
  const noisy = linearFit([10, 12, 9, 11, 10, 12, 9, 11])
  t.ok(Math.abs(noisy.slope) < 0.2 && noisy.stdError > 0.1, `flat noise: slope ${noisy.slope.toFixed(3)} ± ${noisy.stdError.toFixed(3)}`)
  t.equal(linearFit([3]).stdError, Infinity, 'one sample: no error to tell')
})

t.test('growing: significant and material; noise, a plateau or a small rise are not', async (t) => {
  const mib = 1 << 20
  const leak = [150, 152, 154, 156, 158, 160, 162, 164, 166].map((x) => x * mib)
  t.ok(judgeTrend(leak, floorOf(leak, 4 * mib, 0.05)).growing, '2 MiB a minute for 9 minutes grows')
  const noise = [150, 158, 149, 157, 151, 156, 150, 158, 152].map((x) => x * mib)
  t.notOk(judgeTrend(noise, floorOf(noise, 4 * mib, 0.05)).growing, 'noise of ±4 MiB does not')
  const small = [300, 300, 301, 301, 301, 302, 302, 302, 303]
  t.notOk(judgeTrend(small, floorOf(small, 4, 0.05)).growing, 'a steady rise of 3 descriptors is below the floor')
  t.notOk(judgeTrend([10, 20], 1).growing, 'two samples: no verdict')
  t.equal(floorOf([100, 200, 300], 4, 0.05), 10, 'the floor: 5 % of the median when above the absolute one')
})
