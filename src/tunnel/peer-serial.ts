import type { TLSSocket } from 'node:tls'

// The serial number of the certificate a peer presented (hex, uppercase, as
// X509Certificate#serialNumber and Svid#serial): which of the peer's SVIDs this
// connection uses, for logs and rotation checks.
//
// Read it BEFORE verifyTlsPeer. On a client socket, Node 20's getPeerX509Certificate()
// works once: afterwards it, and getPeerCertificate(), return nothing. getPeerCertificate()
// (used here) leaves the certificate in place.

export function peerSerialOf (socket: TLSSocket): string {
  const cert = socket.getPeerCertificate()
  return typeof cert?.serialNumber === 'string' ? cert.serialNumber.toUpperCase() : ''
}
