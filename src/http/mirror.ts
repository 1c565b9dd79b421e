import type { RequestPlan } from '../routing/model'
import type { HttpEngineDeps } from './engine'
import type { HeldBody } from './request-body'
import type { StartUpstream, UpstreamCall, UpstreamEvents, UpstreamHead } from './routed-io'

// A route's request mirrors (Gateway API RequestMirror, Istio mirror): a copy of the
// request — its edited headers and its whole body — to an endpoint of each mirrored
// backend (plan.mirrorTarget), sent once the body has arrived, its response read and
// dropped. Fire and forget: a mirror never delays nor fails the request, takes nothing
// from the retry budget, and is not retried. A request whose body is not held whole
// (over 64 KiB) is not mirrored. As Envoy does, the copy's authority gets "-shadow"
// appended, so the mirrored service can tell copies apart.

export function sendMirrors (deps: HttpEngineDeps, plan: RequestPlan, start: StartUpstream, head: UpstreamHead, body: HeldBody | null): void {
  const send = (): void => {
    const chunks = body === null ? [] : body.whole()
    if (chunks === null) return
    for (const backend of plan.mirrors) {
      const target = plan.mirrorTarget(backend)
      if (target === null) continue
      const copy: UpstreamHead = { method: head.method, path: head.path, authority: head.authority === '' ? '' : shadow(head.authority), headers: { ...head.headers }, hasBody: head.hasBody }
      let call: UpstreamCall | null = null
      const events: UpstreamEvents = {
        response () { call?.discard() },
        data () {},
        trailers () {},
        end () {},
        failed () {},
        continue () {}
      }
      call = start(deps, target, copy, events, (sink) => {
        for (const c of chunks) sink.write(c)
        sink.end()
      })
      if (plan.timeoutMs !== null) {
        const c = call
        setTimeout(() => { c.cancel() }, plan.timeoutMs).unref()
      }
    }
  }
  if (body === null) send()
  else body.onComplete(send)
}

/** "host:port" → "host-shadow:port". */
function shadow (authority: string): string {
  const colon = authority.lastIndexOf(':')
  if (colon > 0 && authority.indexOf(']') < colon) return `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`
  return `${authority}-shadow`
}
