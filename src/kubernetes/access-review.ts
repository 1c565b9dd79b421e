import { ferryError } from '../errors'
import { httpStatusOf, type K8s, type KubeConfigSource, loadKubeConfig, loadKubernetesClient } from './client'
import type { TokenReviewStatus } from './token-review'

// The API server's SubjectAccessReview (POST /apis/authorization.k8s.io/v1/
// subjectaccessreviews) with the official client: "may this user do this?", answered by
// the cluster's own authorizers (RBAC), so who may read an agent's debug endpoints is
// granted the Kubernetes way (a ClusterRole on the resource below). A request that gets
// no answer throws FERRY_ERR_KUBE_API: nothing was decided.

/** What a caller of an agent's /debug endpoints must be allowed: `get` on `agents/debug` of group ferry.dev, named after the node. */
export const DEBUG_ACCESS = Object.freeze({ group: 'ferry.dev', resource: 'agents', subresource: 'debug', verb: 'get' })

export interface AccessReviewStatus {
  readonly allowed?: boolean
  readonly denied?: boolean
  readonly reason?: string
  readonly evaluationError?: string
}

/** user: as a TokenReview returned it. */
export type AccessReviewer = (user: NonNullable<TokenReviewStatus['user']>, node: string) => Promise<AccessReviewStatus>

export async function kubernetesAccessReviewer (source: KubeConfigSource = {}): Promise<AccessReviewer> {
  const client = await loadKubernetesClient()
  const kc = await loadKubeConfig(source)
  const api: K8s.AuthorizationV1Api = kc.makeApiClient(client.AuthorizationV1Api)
  const server = kc.getCurrentCluster()?.server ?? '?'
  return async (user, node) => {
    let review: K8s.V1SubjectAccessReview
    try {
      review = await api.createSubjectAccessReview({
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            ...(user.username === undefined ? {} : { user: user.username }),
            ...(user.uid === undefined ? {} : { uid: user.uid }),
            groups: [...(user.groups ?? [])],
            extra: Object.fromEntries(Object.entries(user.extra ?? {}).map(([k, v]) => [k, [...v]])),
            resourceAttributes: { ...DEBUG_ACCESS, name: node }
          }
        }
      })
    } catch (err) {
      const status = httpStatusOf(err)
      const what = status === undefined ? (err as Error).message.split('\n')[0] : `HTTP ${status}`
      throw ferryError('FERRY_ERR_KUBE_API', `SubjectAccessReview at ${server} failed: ${what}`, { cause: err })
    }
    return (review.status ?? {}) as AccessReviewStatus
  }
}
