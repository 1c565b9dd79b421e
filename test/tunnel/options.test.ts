import t from 'tap'
import { TUNNEL_DEFAULTS, TunnelPool, TunnelServer } from '../../src/tunnel'

// Options are checked once, at construction: unknown names and out-of-range values are
// FERRY_ERR_INVALID_ARG naming the option (a renamed option is never silently ignored).

const fns = { selectSvid: () => null, onStream: () => {} }

t.test('unknown options are refused by name', async (t) => {
  t.throws(() => new TunnelPool({ idleTimeout: 5 } as never), { code: 'FERRY_ERR_INVALID_ARG', message: /unknown option "idleTimeout"/ })
  t.throws(() => new TunnelServer({ ...fns, maxStreams: 5 } as never), { code: 'FERRY_ERR_INVALID_ARG', message: /unknown option "maxStreams" \(known: .*maxConcurrentStreams/ })
})

t.test('values out of range are refused with the range', async (t) => {
  t.throws(() => new TunnelPool({ openTimeoutMs: 0 }), { message: /"openTimeoutMs" is 0: expected an integer from 1/ })
  t.throws(() => new TunnelPool({ streamWindowBytes: 1024 }), { message: /"streamWindowBytes" is 1024: expected an integer from 65535 to 2147483647/ })
  t.throws(() => new TunnelPool({ maxFrameBytes: 2 ** 24 }), { message: /"maxFrameBytes"/ })
  t.throws(() => new TunnelServer({ ...fns, maxConcurrentStreams: 1.5 }), { message: /"maxConcurrentStreams" is 1.5/ })
  t.throws(() => new TunnelServer({ ...fns, onRefused: 'log' as never }), { message: /"onRefused" must be a function/ })
  t.throws(() => new TunnelServer({ onStream: () => {} } as never), { message: /needs selectSvid and onStream/ })
})

t.test('defaults are frozen and sane', async (t) => {
  t.ok(Object.isFrozen(TUNNEL_DEFAULTS))
  t.ok(TUNNEL_DEFAULTS.clientIdleTimeoutMs < TUNNEL_DEFAULTS.serverIdleTimeoutMs, 'the pool closes idle sessions before the server does')
  t.ok(TUNNEL_DEFAULTS.connectionWindowBytes >= TUNNEL_DEFAULTS.streamWindowBytes)
  t.ok(TUNNEL_DEFAULTS.decisionTimeoutMs > 10_000, 'longer than the proxy connect timeout, so the agent answers 503 first')
  t.doesNotThrow(() => new TunnelPool({ openTimeoutMs: 100, maxStreamsPerSession: 1 }))
})
