import { createHash } from 'node:crypto'

// A digest of some content, to tell whether it changed without keeping it. A source that
// compares each new state with the last keeps 44 characters instead of the whole text (a
// cluster's List is megabytes on a large cluster): a kept copy outlives V8's young
// generation, so each change would leave one more in the old generation until a full
// collection, and content read as bytes need not become a string at all when unchanged.

export function digestOf (content: string | Uint8Array): string {
  return createHash('sha256').update(content).digest('base64')
}
