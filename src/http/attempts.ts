import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { Writable } from 'node:stream'
import type { Attempt, AttemptOutcome, RequestPlan } from '../routing/model'
import type { UpstreamTarget } from './context'
import type { HttpEngineDeps } from './engine'
import { GRPC_DEADLINE_EXCEEDED, GRPC_UNAVAILABLE, grpcStatusIn } from './grpc-status'
import { applyHeaderEdits } from './header-edits'
import { endToEndHeaders } from './hop-by-hop'
import { addRateLimitHeaders } from './rate-limit'
import type { RequestState } from './record'
import type { HeldBody } from './request-body'
import { retriableFailure, retriableResponse, retryBackoffMs } from './retry-on'
import type { RoutedDownstream, StartUpstream, UpstreamCall, UpstreamEvents, UpstreamHead } from './routed-io'

// The attempt loop of one routed request: carries out a RequestPlan's timing and retries
// whatever the HTTP versions (every forwarder's routed requests come here through
// forward-routed.ts):
//   delay        the plan's injected delay first (flag DI)
//   attempt      plan.attempt(tried) reserves an endpoint (UH: 503 no healthy upstream,
//                UO: 503 upstream overflow); every attempt's `end` is called exactly once
//                with how it ended. Its exchange uses the pools of its backend's
//                connection limits (upstream-pool.ts), if it has some
//   retry        on a connect failure, a reset before the response, a retriable status
//                or trailers-only grpc-status (plan.retry.on), or a per-try timeout — only
//                while nothing of the response was sent downstream and the request can be
//                sent again (its body held whole: request-body.ts); at most
//                retry.attempts retries, each after a backoff with full jitter
//                (base·2^(n−1), capped at max) and each allowed by plan.retryDelay()
//                (the node-wide budget, which may ask the retry to wait for its turn:
//                the wait is the longer of the two). A retriable failure that may not be retried
//                because of the count or the budget is the answer, flagged URX
//   timeouts     plan.timeoutMs bounds the whole request (retries and backoff included),
//                plan.perTryTimeoutMs each attempt; either cancels the upstream exchange
//                (the endpoint sees the request canceled) and answers 504 UT (gRPC:
//                DEADLINE_EXCEEDED trailers-only) when nothing was sent yet, else cuts the
//                response
//   response     the committed attempt's response streams down with the plan's response
//                header edits (and the rate limit's headers), trailers passed on
// The client leaving cancels the attempt in flight (outcome `canceled`).

export interface LoopContext {
  readonly deps: HttpEngineDeps
  readonly st: RequestState
  readonly plan: RequestPlan
  readonly down: RoutedDownstream
  readonly start: StartUpstream
  /** The request's head; each attempt gets its own copy of the headers. */
  readonly head: UpstreamHead
  readonly body: HeldBody | null
  /** Answers gRPC trailers-only (an HTTP/2 client's gRPC request). */
  readonly grpc: boolean
  /** Each attempt's endpoint before its exchange (the first: the span; same-node: the destination's authorization); false: refused and answered. */
  admitTarget (target: UpstreamTarget, first: boolean): boolean
}

/** Why the last attempt failed when no response can be passed on. */
type Failure = 'UF' | 'UC' | 'UT'
type RetryVerdict = 'retry' | 'no' | 'limit'

class Try {
  call: UpstreamCall | null = null
  sink: Writable | null = null
  timer: NodeJS.Timeout | null = null
  outcome: AttemptOutcome | null = null
  trailers: OutgoingHttpHeaders | null = null
  ended = false
  constructor (readonly attempt: Attempt) {}
}

export class AttemptLoop {
  private readonly tried: UpstreamTarget[] = []
  private retries = 0
  /** What the budget asked the retry being decided to wait (ms). */
  private budgetWaitMs = 0
  private current: Try | null = null
  private last: Failure | null = null
  private requestTimer: NodeJS.Timeout | null = null
  private waitTimer: NodeJS.Timeout | null = null
  private committed = false
  private done = false

  constructor (private readonly c: LoopContext) {}

  start (): void {
    const { plan, st } = this.c
    if (plan.delayMs > 0) {
      st.flag('DI')
      this.waitTimer = setTimeout(() => { this.waitTimer = null; this.begin() }, plan.delayMs)
      return
    }
    this.begin()
  }

  /** The client is gone: the attempt in flight is canceled. */
  downstreamGone (): void {
    if (this.done) return
    const cur = this.current
    if (cur !== null) {
      cur.call?.cancel()
      this.endTry(cur, CANCELED)
    }
    this.finish()
  }

  private begin (): void {
    if (this.done) return
    const t = this.c.plan.timeoutMs
    if (t !== null) this.requestTimer = setTimeout(() => { this.requestTimedOut() }, t)
    this.next()
  }

  private next (): void {
    if (this.done || this.c.down.gone) return
    const { plan, st, deps } = this.c
    const a = plan.attempt(this.tried)
    if (typeof a === 'string') {
      if (this.last !== null) { this.giveUp(this.last, 'no'); return }
      st.flag(a)
      this.answer(503, a === 'UO' ? 'upstream overflow' : 'no healthy upstream', GRPC_UNAVAILABLE)
      return
    }
    st.attempts++
    this.tried.push(a.target)
    st.target = a.target
    if (!this.c.admitTarget(a.target, st.attempts === 1)) {
      a.end(CANCELED)
      this.finish()
      return
    }
    const cur = new Try(a)
    this.current = cur
    const head = this.c.head
    const copy: UpstreamHead = { method: head.method, path: head.path, authority: head.authority, headers: { ...head.headers }, hasBody: head.hasBody }
    cur.call = this.c.start(deps, a.target, copy, this.events(cur), (sink) => {
      cur.sink = sink
      this.c.body?.attach(sink)
    }, a.connections ?? null)
    const perTry = plan.perTryTimeoutMs
    if (perTry !== null && !cur.ended) cur.timer = setTimeout(() => { this.tryTimedOut(cur) }, perTry)
  }

  private events (cur: Try): UpstreamEvents {
    return {
      response: (status, headers, endStream) => { if (this.current === cur) this.response(cur, status, headers, endStream) },
      data: (chunk) => { if (this.current === cur) this.data(cur, chunk) },
      trailers: (t) => {
        if (this.current !== cur) return
        const g = grpcStatusIn(t)
        if (g !== null) {
          this.c.st.grpcStatus = g
          cur.outcome = { kind: 'response', status: this.c.st.responseCode, grpcStatus: g }
        }
        cur.trailers = endToEndHeaders(t)
      },
      end: () => {
        if (this.current !== cur) return
        this.c.down.end(cur.trailers)
        this.endTry(cur, cur.outcome ?? RESET)
        this.finish()
      },
      failed: (connect) => { if (this.current === cur) this.failed(cur, connect) },
      continue: () => { if (this.current === cur) this.c.down.continue() }
    }
  }

  private response (cur: Try, status: number, headers: IncomingHttpHeaders, endStream: boolean): void {
    const { st, plan, down } = this.c
    const grpcStatus = grpcStatusIn(headers)
    const outcome: AttemptOutcome = { kind: 'response', status, grpcStatus }
    let urx = false
    const on = plan.retry?.on
    if (on !== undefined && retriableResponse(on, status, grpcStatus)) {
      const v = this.mayRetry()
      if (v === 'retry') {
        cur.call?.discard()
        this.endTry(cur, outcome)
        this.retry()
        return
      }
      urx = v === 'limit'
    }
    this.committed = true
    cur.outcome = outcome
    st.responseCode = status
    if (grpcStatus !== null) st.grpcStatus = grpcStatus
    if (urx) st.alsoFlag('URX')
    const rh = endToEndHeaders(headers)
    if (plan.responseHeaders.length > 0) applyHeaderEdits(rh, plan.responseHeaders)
    if (st.rateLimit !== null) addRateLimitHeaders(rh, st.rateLimit)
    down.respond(status, rh, endStream)
  }

  private data (cur: Try, chunk: Buffer): void {
    const { st, down } = this.c
    st.responseBytes += chunk.length
    st.messages?.response.push(chunk)
    if (!down.write(chunk)) {
      cur.call?.pause()
      down.onDrain(() => { cur.call?.resume() })
    }
  }

  private failed (cur: Try, connect: boolean): void {
    if (this.committed) {
      this.c.st.flag('UC')
      this.c.down.reset()
      this.endTry(cur, RESET)
      this.finish()
      return
    }
    this.endTry(cur, connect ? CONNECT_FAILURE : RESET)
    const failure: Failure = connect ? 'UF' : 'UC'
    this.last = failure
    const on = this.c.plan.retry?.on
    const v = on !== undefined && retriableFailure(on, connect) ? this.mayRetry() : 'no'
    if (v === 'retry') this.retry()
    else this.giveUp(failure, v)
  }

  private tryTimedOut (cur: Try): void {
    if (this.current !== cur || this.done) return
    cur.call?.cancel()
    this.endTry(cur, TIMEOUT)
    if (this.committed) {
      this.c.st.flag('UT')
      this.c.down.reset()
      this.finish()
      return
    }
    this.last = 'UT'
    const v = this.mayRetry()
    if (v === 'retry') this.retry()
    else this.giveUp('UT', v)
  }

  private requestTimedOut (): void {
    this.requestTimer = null
    if (this.done) return
    const cur = this.current
    if (cur !== null) {
      cur.call?.cancel()
      this.endTry(cur, TIMEOUT)
    }
    this.c.st.flag('UT')
    if (this.committed || this.c.down.started) {
      this.c.down.reset()
      this.finish()
      return
    }
    this.answer(504, 'upstream request timeout', GRPC_DEADLINE_EXCEEDED)
  }

  /** Whether a retriable failure is retried: the request can be sent again, retries are left, the budget allows. */
  private mayRetry (): RetryVerdict {
    const { plan, body, down } = this.c
    const policy = plan.retry
    if (policy === null || policy.attempts === 0) return 'no'
    if (down.started || down.gone) return 'no'
    if (body !== null && !body.held) return 'no'
    if (this.retries >= policy.attempts) return 'limit'
    const wait = plan.retryDelay()
    if (wait === null) return 'limit'
    this.budgetWaitMs = wait
    return 'retry'
  }

  private retry (): void {
    const policy = this.c.plan.retry
    this.retries++
    const wait = Math.max(this.budgetWaitMs, policy === null ? 0 : retryBackoffMs(policy, this.retries))
    this.waitTimer = setTimeout(() => { this.waitTimer = null; this.next() }, wait)
  }

  /** Answers the last failure (no response to pass on). */
  private giveUp (failure: Failure, v: RetryVerdict): void {
    const st = this.c.st
    st.flag(failure)
    if (v === 'limit') st.alsoFlag('URX')
    if (failure === 'UT') this.answer(504, 'upstream request timeout', GRPC_DEADLINE_EXCEEDED)
    else this.answer(503, `upstream connect error or disconnect/reset before headers. reset reason: ${failure === 'UF' ? 'connection failure' : 'connection termination'}`, GRPC_UNAVAILABLE)
  }

  private answer (status: number, body: string, grpcStatus: number): void {
    const { st, down } = this.c
    if (this.c.grpc) {
      st.responseCode = 200
      st.grpcStatus = grpcStatus
    } else {
      st.responseCode = status
      st.responseBytes = Buffer.byteLength(body)
    }
    down.answer(status, st.rateLimit === null ? null : addRateLimitHeaders({}, st.rateLimit), body, grpcStatus)
    this.finish()
  }

  private endTry (cur: Try, outcome: AttemptOutcome): void {
    if (cur.ended) return
    cur.ended = true
    if (cur.timer !== null) clearTimeout(cur.timer)
    if (cur.sink !== null) this.c.body?.detach(cur.sink)
    if (this.current === cur) this.current = null
    try { cur.attempt.end(outcome) } catch {}
  }

  private finish (): void {
    this.done = true
    if (this.requestTimer !== null) clearTimeout(this.requestTimer)
    if (this.waitTimer !== null) clearTimeout(this.waitTimer)
    this.requestTimer = this.waitTimer = null
  }
}

const CANCELED: AttemptOutcome = Object.freeze({ kind: 'canceled' })
const RESET: AttemptOutcome = Object.freeze({ kind: 'reset' })
const CONNECT_FAILURE: AttemptOutcome = Object.freeze({ kind: 'connect_failure' })
const TIMEOUT: AttemptOutcome = Object.freeze({ kind: 'timeout' })
