import t from 'tap'
import { LAB_USAGE, labCommand, parseDuration } from '../../src/cli/lab-command'

// `ferry lab` argument handling that needs no lab.

t.test('durations', async (t) => {
  t.equal(parseDuration('30'), 30_000)
  t.equal(parseDuration('30s'), 30_000)
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('2m'), 120_000)
  t.throws(() => parseDuration('soon'), { code: 'FERRY_ERR_INVALID_ARG' })
  t.throws(() => parseDuration('0'), { code: 'FERRY_ERR_INVALID_ARG' })
})

t.test('usage and unknown commands', async (t) => {
  t.match(LAB_USAGE, /up \[--name NAME\] \[--no-mesh\] \[--timeout SECONDS\] FILE…/)
  t.match(LAB_USAGE, /exec \[-n NS\] \[-c CONTAINER\] POD -- CMD…/)
  // Goes to stderr (stdout carries this test's TAP).
  t.equal(await labCommand(['frobnicate']), 2)
})

t.test('bad arguments are FerryErrors or parse errors, never crashes', async (t) => {
  await t.rejects(labCommand(['up', '--name', 'Bad_Name', 'x.yaml']), { code: 'FERRY_ERR_INVALID_ARG' })
  await t.rejects(labCommand(['up', '--bogus']), { code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION' })
  await t.rejects(labCommand(['status', '--lab', 'UPPER']), { code: 'FERRY_ERR_INVALID_ARG' })
})
