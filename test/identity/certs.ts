import { createRootCa } from '../../src/controller/root-ca'
import { CertificateIssuer } from '../../src/controller/issuer'
import { createCsr, parseCsr } from '../../src/identity/csr'
import { generateWorkloadKey } from '../../src/identity/keys'
import { trustBundleOf, type TrustBundle } from '../../src/identity/peer-verify'
import { spiffeIdOf, type SpiffeId } from '../../src/identity/spiffe-id'
import { svidFromChain, type Svid } from '../../src/identity/svid'

// A CA in a test's hands (no gRPC): the real root, issuer and CSR path, with the clock
// at the caller's command, for certificates that are expired, not yet valid, or from
// another CA.

export interface TestCa {
  readonly issuer: CertificateIssuer
  readonly trust: TrustBundle
  svid: (id: SpiffeId | string, opts?: { now?: number, ttlMs?: number }) => Promise<Svid>
}

export async function testCa (trustDomain = 'cluster.local'): Promise<TestCa> {
  const root = await createRootCa(trustDomain, Date.now() - 86_400_000)
  const issuer = new CertificateIssuer(root)
  return {
    issuer,
    trust: trustBundleOf(trustDomain, issuer.bundle()),
    async svid (id, opts = {}) {
      const spiffeId = typeof id === 'string' ? spiffeIdFor(trustDomain, id) : id
      const now = opts.now ?? Date.now()
      const key = await generateWorkloadKey()
      const csr = await parseCsr(await createCsr(key, spiffeId))
      const leaf = await issuer.issueWorkload(csr, spiffeId, opts.ttlMs ?? 3_600_000, now)
      return svidFromChain(issuer.chainOf(leaf.pem), key, spiffeId, now)
    }
  }
}

/** "app/web" → spiffe://<td>/ns/app/sa/web */
export function spiffeIdFor (trustDomain: string, nsSa: string): SpiffeId {
  const [ns, sa] = nsSa.split('/')
  return spiffeIdOf(trustDomain, ns, sa)
}
