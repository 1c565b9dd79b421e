import { ferryError } from '../errors'
import { httpStatusOf, type K8s, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'

// The API server's TokenReview (POST /apis/authentication.k8s.io/v1/tokenreviews) with
// the official client: "is this token valid for these audiences, and whose is it?".
// The answer is the review's status as the API server wrote it; judging it (user,
// audience, node) is the authenticator's job (src/controller/authn-token-review.ts).
// A request that gets no review back (network, 5xx, 401/403 for the controller's own
// RBAC) throws FERRY_ERR_KUBE_API: the token was not judged at all.

export interface TokenReviewStatus {
  readonly authenticated?: boolean
  readonly audiences?: readonly string[]
  readonly error?: string
  readonly user?: {
    readonly username?: string
    readonly uid?: string
    readonly groups?: readonly string[]
    readonly extra?: Readonly<Record<string, readonly string[]>>
  }
}

export type TokenReviewer = (token: string, audiences: readonly string[]) => Promise<TokenReviewStatus>

/** A reviewer talking to the API server of `source` (in-cluster, a kubeconfig file, or a test server). */
export async function kubernetesTokenReviewer (source: KubeConfigSource = {}): Promise<TokenReviewer> {
  const client = await loadKubernetesClient()
  const kc = await loadKubeConfig(source)
  const api: K8s.AuthenticationV1Api = kc.makeApiClient(client.AuthenticationV1Api)
  const server = kc.getCurrentCluster()?.server ?? '?'
  return async (token, audiences) => {
    let review: K8s.V1TokenReview
    try {
      review = await api.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences: [...audiences] } }
      })
    } catch (err) {
      const status = httpStatusOf(err)
      const what = status === undefined ? (err as Error).message.split('\n')[0] : `HTTP ${status}`
      throw ferryError('FERRY_ERR_KUBE_API', `TokenReview at ${server} failed: ${what}`, { cause: err })
    }
    return (review.status ?? {}) as TokenReviewStatus
  }
}
