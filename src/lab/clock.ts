import { setTimeout as delay } from 'node:timers/promises'

/** Waits `ms`; rejects early with the signal's reason when it aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  await delay(ms, undefined, signal === undefined ? undefined : { signal })
}

/** A point in time after which bounded loops give up. */
export class Deadline {
  readonly at: number
  constructor (ms: number, private readonly now: () => number = Date.now) { this.at = now() + ms }
  get expired (): boolean { return this.now() >= this.at }
  get remainingMs (): number { return Math.max(0, this.at - this.now()) }
}
