import type { FieldPath } from './issues'

// What the lab does with each Kubernetes field it may meet. A field is either
// honoured, harmlessly ignored (it would not change what the pod does here: image,
// resources, tolerations…), or refused because ignoring it would make the lab lie
// (hostNetwork, volumes, HTTPS probes…). Fields absent from the table are refused too: the
// lab never silently drops something it has not thought about.

type Rule =
  | { readonly t: 'ok' }
  | { readonly t: 'no', readonly why: string, readonly allowed: readonly unknown[] }
  | { readonly t: 'obj', readonly fields: Rules }
  | { readonly t: 'arr', readonly fields: Rules }
type Rules = Readonly<Record<string, Rule>>

const ok: Rule = { t: 'ok' }
/** Refused, unless its value is one of `allowed` (usually the Kubernetes default). */
const no = (why: string, ...allowed: unknown[]): Rule => ({ t: 'no', why, allowed })
const obj = (fields: Rules): Rule => ({ t: 'obj', fields })
const arr = (fields: Rules): Rule => ({ t: 'arr', fields })

const METADATA = obj({
  name: ok,
  namespace: ok,
  labels: ok,
  annotations: ok,
  ownerReferences: ok, // passed through: discovery names workloads after their owner
  generateName: no('the lab needs fixed names; set metadata.name'),
  // Written by the API server; ignored like `kubectl apply` would after a round trip.
  uid: ok,
  resourceVersion: ok,
  generation: ok,
  creationTimestamp: ok,
  managedFields: ok,
  selfLink: ok,
  finalizers: ok,
  deletionTimestamp: no('the object is being deleted'),
  deletionGracePeriodSeconds: no('the object is being deleted')
})

const ROOT_COMMON: Rules = { apiVersion: ok, kind: ok, metadata: METADATA, status: ok }

const ROOT_AS_USER = 'the lab runs every process as root on the host\'s filesystem'

/** A probe, run by the lab's kubelet; its semantics are checked in probes.ts. */
const PROBE = obj({
  exec: obj({ command: ok }),
  httpGet: obj({
    path: ok,
    port: ok,
    host: ok,
    httpHeaders: ok,
    scheme: no('the lab\'s kubelet probes over plain HTTP only', 'HTTP')
  }),
  tcpSocket: obj({ port: ok, host: ok }),
  grpc: obj({ port: ok, service: ok }),
  initialDelaySeconds: ok,
  periodSeconds: ok,
  timeoutSeconds: ok,
  successThreshold: ok,
  failureThreshold: ok,
  // Ignored: a container the kubelet restarts gets the pod's grace period (at most MAX_GRACE_SECONDS).
  terminationGracePeriodSeconds: ok
})

const CONTAINER = arr({
  name: ok,
  command: ok,
  args: ok,
  workingDir: ok,
  env: arr({
    name: ok,
    value: ok,
    valueFrom: obj({
      fieldRef: obj({ apiVersion: ok, fieldPath: ok }),
      configMapKeyRef: no('the lab has no ConfigMaps; use env[].value'),
      secretKeyRef: no('the lab has no Secrets; use env[].value'),
      resourceFieldRef: no('the lab does not set resource limits')
    })
  }),
  ports: arr({
    name: ok,
    containerPort: ok,
    protocol: no('the lab and the mesh carry TCP only', 'TCP'),
    hostPort: no('the lab has no host ports'),
    hostIP: no('the lab has no host ports')
  }),
  image: ok, // commands run from the host's filesystem
  imagePullPolicy: ok,
  resources: ok,
  terminationMessagePath: ok,
  terminationMessagePolicy: ok,
  envFrom: no('the lab has no ConfigMaps or Secrets'),
  volumeMounts: no('the lab has no volumes'),
  volumeDevices: no('the lab has no volumes'),
  livenessProbe: PROBE,
  readinessProbe: PROBE,
  startupProbe: PROBE,
  lifecycle: no('the lab runs no lifecycle hooks'),
  securityContext: no(ROOT_AS_USER),
  stdin: no('containers get no standard input', false),
  stdinOnce: no('containers get no standard input', false),
  tty: no('containers get no terminal', false),
  resizePolicy: ok,
  restartPolicy: no('the lab has no init or sidecar containers')
})

const KIND_RULES: Readonly<Record<string, Rules>> = {
  Node: { ...ROOT_COMMON, spec: obj({}) },
  Namespace: { ...ROOT_COMMON, spec: obj({ finalizers: ok }) },
  Pod: {
    ...ROOT_COMMON,
    spec: obj({
      containers: CONTAINER,
      nodeName: ok,
      serviceAccountName: ok,
      serviceAccount: ok,
      hostname: ok,
      subdomain: ok,
      hostAliases: ok,
      terminationGracePeriodSeconds: ok,
      restartPolicy: ok, // the lab restarts a container only when its liveness or startup probe fails
      dnsPolicy: no('names resolve through the lab\'s hosts file only', 'ClusterFirst'),
      enableServiceLinks: ok,
      automountServiceAccountToken: ok,
      imagePullSecrets: ok,
      priority: ok,
      priorityClassName: ok,
      preemptionPolicy: ok,
      schedulerName: ok,
      nodeSelector: ok, // spec.nodeName decides placement
      affinity: ok,
      tolerations: ok,
      topologySpreadConstraints: ok,
      runtimeClassName: ok,
      hostNetwork: no('pods always get their own network namespace in the lab', false),
      // Lab pods share the host's PID, IPC, UTS, user and mount namespaces whatever these say.
      hostPID: ok,
      hostIPC: ok,
      hostUsers: ok,
      shareProcessNamespace: ok,
      setHostnameAsFQDN: ok,
      securityContext: no(ROOT_AS_USER),
      initContainers: no('the lab has no init containers yet'),
      ephemeralContainers: no('use `ferry lab exec` instead'),
      volumes: no('the lab has no volumes'),
      dnsConfig: no('names resolve through the lab\'s hosts file only'),
      activeDeadlineSeconds: no('the lab does not stop pods on a deadline'),
      readinessGates: no('the lab\'s kubelet sets no conditions but its own'),
      overhead: ok,
      os: ok,
      resources: ok,
      resourceClaims: no('the lab has no dynamic resources'),
      schedulingGates: no('the lab does not schedule')
    })
  },
  Service: {
    ...ROOT_COMMON,
    spec: obj({
      selector: ok,
      ports: arr({
        name: ok,
        port: ok,
        targetPort: ok,
        appProtocol: ok,
        protocol: no('the lab and the mesh carry TCP only', 'TCP'),
        nodePort: no('the lab has ClusterIP services only')
      }),
      type: no('the lab has ClusterIP services only', 'ClusterIP'),
      clusterIP: ok,
      clusterIPs: ok,
      ipFamilies: ok,
      ipFamilyPolicy: ok,
      publishNotReadyAddresses: ok,
      sessionAffinity: no('the mesh balances every connection round robin', 'None'),
      sessionAffinityConfig: no('the mesh balances every connection round robin'),
      internalTrafficPolicy: no('the mesh sends to endpoints on every node', 'Cluster'),
      externalTrafficPolicy: no('the lab has ClusterIP services only'),
      trafficDistribution: no('the mesh sends to endpoints on every node'),
      externalIPs: no('the lab has ClusterIP services only'),
      externalName: no('the lab has ClusterIP services only'),
      loadBalancerIP: no('the lab has ClusterIP services only'),
      loadBalancerClass: no('the lab has ClusterIP services only'),
      loadBalancerSourceRanges: no('the lab has ClusterIP services only'),
      allocateLoadBalancerNodePorts: no('the lab has ClusterIP services only'),
      healthCheckNodePort: no('the lab has ClusterIP services only')
    })
  }
}

export interface RuleIssue { readonly path: FieldPath, readonly message: string }

/** Fields of a schema-valid object that the lab refuses. */
export function labRuleIssues (kind: string, value: Record<string, unknown>): RuleIssue[] {
  const rules = KIND_RULES[kind]
  if (rules === undefined) return []
  const issues: RuleIssue[] = []
  walk(value, rules, [], issues)
  return issues
}

function walk (value: Record<string, unknown>, rules: Rules, path: FieldPath, issues: RuleIssue[]): void {
  for (const [key, v] of Object.entries(value)) {
    if (v === undefined || v === null) continue
    const rule = rules[key]
    const here = [...path, key]
    if (rule === undefined) {
      issues.push({ path: here, message: 'is not supported by the lab' })
      continue
    }
    switch (rule.t) {
      case 'ok': break
      case 'no':
        if (!rule.allowed.some((a) => a === v)) {
          const allowed = rule.allowed.length > 0 ? ` (only ${rule.allowed.map((a) => JSON.stringify(a)).join(' or ')})` : ''
          issues.push({ path: here, message: `is not supported by the lab: ${rule.why}${allowed}` })
        }
        break
      case 'obj':
        if (typeof v === 'object' && !Array.isArray(v)) walk(v as Record<string, unknown>, rule.fields, here, issues)
        break
      case 'arr':
        if (Array.isArray(v)) {
          v.forEach((item, i) => {
            if (item !== null && typeof item === 'object') walk(item as Record<string, unknown>, rule.fields, [...here, i], issues)
          })
        }
        break
    }
  }
}
