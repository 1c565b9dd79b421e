import { isIP } from 'node:net'
import type { ParsedCsr } from '../identity/csr'
import type { SpiffeId } from '../identity/spiffe-id'
import { EC_P256, x509 } from '../identity/x509'
import { derToPem } from '../identity/pem'
import { CERT_BACKDATE_MS, randomSerial, type RootCa } from './root-ca'

// What the CA writes into certificates. Workload leaves (SVIDs) carry:
//   - an empty subject (no common name) and the SPIFFE ID as the only, critical, URI SAN
//     (RFC 5280 §4.2.1.6: the SAN must be critical when the subject is empty);
//   - keyUsage digitalSignature | keyEncipherment (critical), extKeyUsage serverAuth +
//     clientAuth, basicConstraints CA:false (critical), subject and authority key ids;
//   - notBefore = issuance − CERT_BACKDATE_MS (to the second, X.509's precision) and
//     notAfter = issuance + ttl, where issuance is now to the second and ttl <= what the
//     request asked for and <= the configured maximum. Backdating is for clock skew: an
//     agent whose clock is up to a minute behind the controller's would otherwise find a
//     fresh certificate "not yet valid" (and so would every peer it presents it to). The
//     lifetime is counted from issuance, not from the backdated notBefore, so a
//     certificate is usable for the ttl asked for; svid-rotation.ts renews at half of
//     that (it measures from when the certificate arrived, never from notBefore).
// The controller's own serving certificate is the same but for DNS/IP SANs and
// serverAuth only.

export interface IssuedCertificate {
  readonly pem: string
  readonly notBefore: number
  readonly notAfter: number
  readonly serial: string
}

export class CertificateIssuer {
  constructor (private readonly root: RootCa) {}

  /** The chain Istio's API returns: leaf first, root last. */
  chainOf (leafPem: string): string[] {
    return [leafPem, this.root.certPem]
  }

  /** The trust bundle: the roots a peer's chain must end at. */
  bundle (): string[] {
    return [this.root.certPem]
  }

  async issueWorkload (csr: ParsedCsr, id: SpiffeId, ttlMs: number, now: number): Promise<IssuedCertificate> {
    return await this.issue(csr.publicKey, [{ type: 'url', value: id.uri }], [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, ttlMs, now)
  }

  /** The controller's TLS certificate, for the names agents dial it by (DNS names and IPs). */
  async issueServing (publicKey: x509.PublicKeyType, names: readonly string[], ttlMs: number, now: number): Promise<IssuedCertificate> {
    const sans: x509.JsonGeneralName[] = names.map((n) => ({ type: isIP(n) !== 0 ? 'ip' : 'dns', value: n }))
    return await this.issue(publicKey, sans, [x509.ExtendedKeyUsage.serverAuth], x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, ttlMs, now)
  }

  private async issue (publicKey: x509.PublicKeyType, sans: x509.JsonGeneralName[], eku: string[], usages: number, ttlMs: number, now: number): Promise<IssuedCertificate> {
    const issuedAt = Math.floor(now / 1000) * 1000
    // Never before the root's own notBefore (a path check would fail) …
    const notBefore = Math.max(issuedAt - CERT_BACKDATE_MS, this.root.notBefore)
    // … and never past its notAfter: a leaf that outlives its issuer fails verification early.
    const notAfter = Math.min(issuedAt + Math.max(1000, Math.floor(ttlMs / 1000) * 1000), this.root.notAfter)
    const serial = randomSerial()
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: '',
      issuer: this.root.cert.subjectName,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      publicKey,
      signingKey: this.root.signingKey,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.SubjectAlternativeNameExtension(sans, true),
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(usages, true),
        new x509.ExtendedKeyUsageExtension(eku),
        await x509.SubjectKeyIdentifierExtension.create(publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.root.cert)
      ]
    })
    return Object.freeze({ pem: derToPem(cert.rawData, 'CERTIFICATE'), notBefore, notAfter, serial })
  }
}
