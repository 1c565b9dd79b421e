import t from 'tap'
import { ferryConditions, STATUS_CONDITIONS } from '../../src/controller/policy-status'
import type { ObjectReport } from '../../src/resources/reports'

// The conditions the controller writes into a policy object's status (the writing itself,
// against a stand-in API server, is in kubernetes-mode.test.ts): one per verdict, the
// transition time kept while a condition's status holds.

const base: ObjectReport = { state: 'accepted', object: 'AuthorizationPolicy prod/x', key: 'AuthorizationPolicy/prod/x', apiVersion: 'security.istio.io/v1', file: 'kubernetes:x', line: 1, issues: [], inForce: 'as-written' }
const T0 = Date.parse('2026-12-01T10:00:00Z')

t.test('accepted, degraded, refused (invalid or in conflict)', async (t) => {
  const ok = ferryConditions(base, 3, [], T0)
  t.same(ok, [
    { type: STATUS_CONDITIONS.accepted, status: 'True', reason: 'Accepted', message: 'enforced by Ferry as written', observedGeneration: 3, lastTransitionTime: '2026-12-01T10:00:00Z' },
    { type: STATUS_CONDITIONS.degraded, status: 'False', reason: 'AsWritten', message: 'nothing left out', observedGeneration: 3, lastTransitionTime: '2026-12-01T10:00:00Z' }
  ])
  const degraded = ferryConditions({ ...base, state: 'degraded', inForce: 'degraded', issues: [{ file: 'kubernetes:x', line: 9, object: base.object, path: ['spec', 'rules', 0, 'when'], message: 'not supported by Ferry: conditions; rule 0 of this DENY policy is applied without it' }] }, 3, ok, T0 + 60_000)
  t.match(degraded[0], { status: 'True', reason: 'UnsupportedValue', lastTransitionTime: '2026-12-01T10:00:00Z' }, 'still True: the transition time stays')
  t.match(degraded[1], { status: 'True', reason: 'UnsupportedValue', message: 'kubernetes:x:9: AuthorizationPolicy prod/x: spec.rules[0].when: not supported by Ferry: conditions; rule 0 of this DENY policy is applied without it', lastTransitionTime: '2026-12-01T10:01:00Z' })
  const invalid = ferryConditions({ ...base, state: 'refused', refusal: 'invalid', inForce: 'earlier-version', note: 'the earlier version (kubernetes:x:1) keeps applying', issues: [{ file: 'kubernetes:x', line: 5, message: 'unknown field' }] }, 4, degraded, T0)
  t.match(invalid[0], { status: 'False', reason: 'Invalid', message: 'kubernetes:x:5: unknown field; the earlier version (kubernetes:x:1) keeps applying', observedGeneration: 4 })
  t.match(invalid[1], { status: 'False', reason: 'NotAccepted' })
  const conflict = ferryConditions({ ...base, state: 'refused', refusal: 'conflict', inForce: 'other-definition', issues: [{ file: 'kubernetes:x', line: 4, message: 'defined twice' }] }, undefined, [], T0)
  t.match(conflict[0], { status: 'False', reason: 'Conflict' })
  t.notOk('observedGeneration' in conflict[0], 'no generation known: none written')
})
