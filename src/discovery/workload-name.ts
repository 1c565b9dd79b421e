// A pod's workload name, as Istio names it in `source_workload` / `destination_workload`
// (the name of the object that runs the pod, from its controller owner reference):
//   owned by a ReplicaSet whose name ends in "-<pod-template-hash>" (the pod carries the
//     hash as a label)               → the Deployment: the ReplicaSet's name without it
//   owned by a Job named "<name>-<8 to 10 digits>" (a CronJob's schedule time)
//                                    → the CronJob: the Job's name without it
//   owned by a ReplicationController, with a `deploymentconfig` label (OpenShift)
//                                    → that label
//   owned by anything else (StatefulSet, DaemonSet, a ReplicaSet without the hash, a Job)
//                                    → the owner's name
//   no owner (a bare pod)            → the pod's name
// The controller reference (controller: true) is the owner; a hand-written list that
// leaves the flag out has its first reference taken instead. Labels do not name the
// workload (Istio's canonical service uses them: src/telemetry/istio-labels.ts).

export interface OwnerReference {
  readonly kind: string
  readonly name: string
  readonly controller?: boolean
}

const TEMPLATE_HASH_LABEL = 'pod-template-hash'
const DEPLOYMENT_CONFIG_LABEL = 'deploymentconfig'
const CRON_JOB_NAME = /^(.+)-\d{8,10}$/

export function workloadName (pod: string, labels: Readonly<Record<string, string>>, owners: readonly OwnerReference[] | undefined): string {
  const owner = owners?.find((o) => o.controller === true) ?? owners?.find((o) => o.controller === undefined)
  if (owner === undefined) return pod
  switch (owner.kind) {
    case 'ReplicaSet': {
      const hash = labels[TEMPLATE_HASH_LABEL]
      if (hash !== undefined && hash !== '' && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -(hash.length + 1))
      return owner.name
    }
    case 'Job': {
      const m = CRON_JOB_NAME.exec(owner.name)
      return m === null ? owner.name : m[1]!
    }
    case 'ReplicationController': {
      const dc = labels[DEPLOYMENT_CONFIG_LABEL]
      return dc !== undefined && dc !== '' ? dc : owner.name
    }
    default:
      return owner.name
  }
}
