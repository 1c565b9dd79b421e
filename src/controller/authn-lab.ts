import { readFile, stat } from 'node:fs/promises'
import { ferryError, isFerryError } from '../errors'
import type { Logger } from '../telemetry/logger'
import type { Authenticator, AuthnResult } from './authn'
import { parseLabNodeTokens, tokenDigest } from './lab-node-tokens'

// The lab's Authenticator: bearer tokens from the lab's tokens file (lab-node-tokens.ts).
// The file is re-read when it changes (checked by stat before each lookup: certificate
// requests are rare, a stat is cheap), so the lab can add a node without restarting the
// controller. A file that turns bad is logged once and the last good one stays in force.

export class LabTokenAuthenticator implements Authenticator {
  readonly kind = 'lab-tokens'
  private byDigest: ReadonlyMap<string, string> = new Map()
  private statKey = ''
  private lastError = ''

  private constructor (private readonly path: string, private readonly log: Logger) {}

  /** Reads the file once; a missing or invalid file at start is an error (FERRY_ERR_CONFIG). */
  static async open (path: string, log: Logger): Promise<LabTokenAuthenticator> {
    const a = new LabTokenAuthenticator(path, log)
    await a.reload(true)
    return a
  }

  async authenticate (token: string | null): Promise<AuthnResult> {
    if (token === null) return { ok: false, reason: 'no bearer token in the "authorization" metadata' }
    await this.reload(false)
    const node = this.byDigest.get(tokenDigest(token))
    if (node === undefined) return { ok: false, reason: 'unknown bearer token' }
    return { ok: true, caller: Object.freeze({ node, principal: `lab-node:${node}` }) }
  }

  close (): void {}

  private async reload (strict: boolean): Promise<void> {
    try {
      const s = await stat(this.path)
      const key = `${s.ino}:${s.size}:${s.mtimeMs}`
      if (key === this.statKey) return
      const text = await readFile(this.path, 'utf8')
      this.byDigest = parseLabNodeTokens(text, this.path)
      this.statKey = key
      this.lastError = ''
      this.log.info({ path: this.path, nodes: new Set(this.byDigest.values()).size }, 'loaded lab node tokens')
    } catch (err) {
      if (strict) {
        if (isFerryError(err)) throw err
        throw ferryError('FERRY_ERR_CONFIG', `${this.path}: cannot read the lab node tokens: ${(err as Error).message}`, { cause: err, errno: (err as NodeJS.ErrnoException).code })
      }
      const message = (err as Error).message
      if (message !== this.lastError) {
        this.lastError = message
        this.log.error({ err, path: this.path }, 'lab node tokens unreadable; keeping the last good ones')
      }
    }
  }
}
