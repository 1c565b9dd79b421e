// API objects in the shape a Kubernetes v1.30 API server returns them
// (`kubectl get -o json`): server-set fields included (uid, resourceVersion,
// creationTimestamp, managedFields, ownerReferences, defaulted spec fields, status with
// conditions and container statuses). They are written out by hand from that shape,
// not captured from a live cluster (none can run here); only the names, IPs and UIDs
// vary.

type Obj = Record<string, any>

const CREATED = '2025-11-20T09:14:03Z'

export function namespace (name: string, labels: Record<string, string> = {}): Obj {
  return {
    metadata: {
      name,
      uid: uid(`ns-${name}`),
      creationTimestamp: CREATED,
      labels: { 'kubernetes.io/metadata.name': name, ...labels },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'v1', time: CREATED, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:kubernetes.io/metadata.name': {} } } } }]
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' }
  }
}

export interface PodShape {
  name: string
  namespace: string
  node: string
  ip?: string
  ips?: string[]
  app: string
  serviceAccount?: string
  annotations?: Record<string, string>
  ports?: Array<{ name?: string, containerPort: number }>
  phase?: string
  /** The Ready condition's status (default True). */
  ready?: boolean
  /** readinessProbe / livenessProbe / startupProbe of the container, as in a pod spec. */
  probes?: Record<string, unknown>
}

export function pod (p: PodShape): Obj {
  const hash = '7c9d8f6b5'
  const ips = p.ips ?? (p.ip === undefined ? [] : [p.ip])
  const sa = p.serviceAccount ?? p.app
  return {
    metadata: {
      name: p.name,
      generateName: `${p.app}-${hash}-`,
      namespace: p.namespace,
      uid: uid(`pod-${p.namespace}-${p.name}`),
      creationTimestamp: CREATED,
      labels: { app: p.app, 'pod-template-hash': hash },
      ...(p.annotations === undefined ? {} : { annotations: p.annotations }),
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: `${p.app}-${hash}`, uid: uid(`rs-${p.app}`), controller: true, blockOwnerDeletion: true }],
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: CREATED, fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:generateName': {} } } }]
    },
    spec: {
      volumes: [{ name: 'kube-api-access-x7k2p', projected: { sources: [{ serviceAccountToken: { expirationSeconds: 3607, path: 'token' } }, { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }, { downwardAPI: { items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }] } }], defaultMode: 420 } }],
      containers: [{
        name: p.app,
        image: `registry.example.com/${p.app}:1.0`,
        ports: (p.ports ?? []).map((x) => ({ ...x, protocol: 'TCP' })),
        resources: { requests: { cpu: '50m', memory: '64Mi' } },
        volumeMounts: [{ name: 'kube-api-access-x7k2p', readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' }],
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
        imagePullPolicy: 'IfNotPresent',
        ...p.probes
      }],
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 30,
      dnsPolicy: 'ClusterFirst',
      serviceAccountName: sa,
      serviceAccount: sa,
      ...(p.node === '' ? {} : { nodeName: p.node }),
      securityContext: {},
      schedulerName: 'default-scheduler',
      tolerations: [
        { key: 'node.kubernetes.io/not-ready', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 },
        { key: 'node.kubernetes.io/unreachable', operator: 'Exists', effect: 'NoExecute', tolerationSeconds: 300 }
      ],
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: 'PreemptLowerPriority'
    },
    status: {
      phase: p.phase ?? 'Running',
      conditions: [
        { type: 'PodReadyToStartContainers', status: 'True', lastProbeTime: null, lastTransitionTime: CREATED },
        { type: 'Initialized', status: 'True', lastProbeTime: null, lastTransitionTime: CREATED },
        { type: 'Ready', status: p.ready === false ? 'False' : 'True', lastProbeTime: null, lastTransitionTime: CREATED },
        { type: 'ContainersReady', status: p.ready === false ? 'False' : 'True', lastProbeTime: null, lastTransitionTime: CREATED },
        { type: 'PodScheduled', status: 'True', lastProbeTime: null, lastTransitionTime: CREATED }
      ],
      ...(p.node === '' ? {} : { hostIP: '172.18.0.2', hostIPs: [{ ip: '172.18.0.2' }] }),
      ...(ips.length === 0 ? {} : { podIP: ips[0], podIPs: ips.map((ip) => ({ ip })) }),
      startTime: CREATED,
      containerStatuses: [{ name: p.app, state: { running: { startedAt: CREATED } }, lastState: {}, ready: true, restartCount: 0, image: `registry.example.com/${p.app}:1.0`, imageID: `registry.example.com/${p.app}@sha256:${'ab'.repeat(32)}`, containerID: `containerd://${'cd'.repeat(32)}`, started: true }],
      qosClass: 'Burstable'
    }
  }
}

export function service (s: { name: string, namespace: string, clusterIP: string, selector: Record<string, string>, ports: Array<{ name: string, port: number, targetPort: number | string }> }): Obj {
  return {
    metadata: {
      name: s.name,
      namespace: s.namespace,
      uid: uid(`svc-${s.namespace}-${s.name}`),
      creationTimestamp: CREATED,
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'v1', time: CREATED, fieldsType: 'FieldsV1', fieldsV1: { 'f:spec': { 'f:selector': {} } } }]
    },
    spec: {
      ports: s.ports.map((p) => ({ ...p, protocol: 'TCP' })),
      selector: s.selector,
      clusterIP: s.clusterIP,
      clusterIPs: [s.clusterIP],
      type: 'ClusterIP',
      sessionAffinity: 'None',
      ipFamilies: ['IPv4'],
      ipFamilyPolicy: 'SingleStack',
      internalTrafficPolicy: 'Cluster'
    },
    status: { loadBalancer: {} }
  }
}

/** A stable, UUID-shaped uid derived from a name. */
export function uid (seed: string): string {
  let h = 2166136261
  const bytes: number[] = []
  for (let i = 0; i < 16; i++) {
    for (const c of `${seed}#${i}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0
    bytes.push(h & 0xff)
  }
  const hex = bytes.map((b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}
