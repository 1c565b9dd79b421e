// Waiting in tests: poll a condition until it holds, bounded, never a bare sleep.

export interface WaitOptions {
  /** How long before giving up; default 10 s. */
  readonly timeoutMs?: number
  /** Pause between two checks; default 10 ms. */
  readonly intervalMs?: number
  /** What is awaited, for the timeout's message. */
  readonly what?: string
}

/**
 * Calls `fn` until it returns a truthy value, and resolves with that value. A throw counts
 * as "not yet" (its message ends up in the timeout's). Rejects once `timeoutMs` is over.
 */
export async function waitFor<T> (fn: () => Promise<T | null | undefined | false> | T | null | undefined | false, opts: WaitOptions = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 10_000)
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
    } catch (err) { last = err }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}${last instanceof Error ? `: ${last.message}` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 10))
  }
}
