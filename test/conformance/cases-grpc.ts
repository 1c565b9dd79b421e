import type { MeshConformanceTest } from './expectations'

// The MESH-GRPC cases of Gateway API's mesh conformance suite (conformance/tests/mesh/
// grpcroute-*.go), their requests and expectations as the suite states them.

const NS = 'gateway-conformance-mesh'

const headerCase = (name: string, client: 'v1' | 'v2', backend: string, match: string, headers: Record<string, string>, expected: Record<string, string>, absent?: string[]) => ({
  name,
  client,
  request: { protocol: 'grpc' as const, host: 'echo:7070', headers: { 'x-test-case': match, ...headers } },
  expectedRequest: { headers: expected, ...(absent !== undefined ? { absentHeaders: absent } : {}) },
  response: { statusCodes: [200] },
  backend,
  namespace: NS
})

export const GRPC_TESTS: readonly MeshConformanceTest[] = [
  {
    shortName: 'MeshGRPCRouteRequestHeaderModifier',
    description: 'A GRPCRoute with RequestHeaderModifier filter should modify request headers in mesh mode',
    manifests: ['grpcroute-request-header-modifier.yaml'],
    cases: [
      headerCase('Set headers -- overwrites existing header', 'v1', 'echo-v1', 'set',
        { 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'this-value-should-be-overwritten' },
        { 'x-test-case': 'set', 'some-other-header': 'this-header-should-be-set', 'x-header-set': 'set-overwrites-values' }),
      headerCase('Add headers -- appends to existing header', 'v1', 'echo-v1', 'add',
        { 'x-header-add': 'this-value-should-be-appended' },
        { 'x-test-case': 'add', 'x-header-add': 'this-value-should-be-appended,add-appends-values' }),
      headerCase('Remove headers -- removes headers', 'v1', 'echo-v1', 'remove',
        { 'x-header-remove': 'this-should-be-removed' },
        { 'x-test-case': 'remove' }, ['x-header-remove']),
      headerCase('Multiple operations -- set, add, and remove headers', 'v2', 'echo-v2', 'multi',
        { 'x-header-set-2': 'set-header-2', 'x-header-add-2': 'add-header-2', 'x-header-remove-2': 'should-be-removed-2' },
        { 'x-test-case': 'multi', 'x-header-set-1': 'header-set-1', 'x-header-set-2': 'header-set-2', 'x-header-add-1': 'header-add-1', 'x-header-add-2': 'add-header-2,header-add-2' },
        ['x-header-remove-1', 'x-header-remove-2'])
    ]
  },
  {
    shortName: 'MeshGRPCRouteWeight',
    description: 'A GRPCRoute with weighted backends in mesh mode',
    manifests: ['grpcroute-weight.yaml'],
    // The suite first waits for one successful call, then checks the distribution.
    cases: [{ request: { protocol: 'grpc', path: '', host: 'echo:7070' }, response: { statusCodes: [200] }, namespace: NS }],
    weights: { request: { protocol: 'grpc', path: '', host: 'echo:7070' }, shares: { 'echo-v1': 0.7, 'echo-v2': 0.3 } }
  }
]
