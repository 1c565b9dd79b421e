// The JSON schemas of a cluster file (a Kubernetes `v1 List`): what src/discovery/cluster-list.ts
// checks before reading an object. Only the fields Ferry uses are described; others are
// ignored. The validators are compiled ahead of time (cluster-list-codegen.ts writes
// cluster-list-validators.ts): edit a schema here, then regenerate (a test fails until then).

/** ajv's options for these schemas: the first error is enough, unknown keywords are refused. */
export const CLUSTER_LIST_AJV_OPTIONS = Object.freeze({ allErrors: false, strict: true })

const labelMap = { type: 'object', additionalProperties: { type: 'string' } }
const port = { type: 'integer', minimum: 1, maximum: 65535 }
const protocol = { enum: ['TCP', 'UDP', 'SCTP'] }
const str = { type: 'string' }
const name = { type: 'string', minLength: 1 }
// A port by number or by the name of a container port (a Service's targetPort, a probe's port).
const portOrName = { anyOf: [port, name] }
const probe = {
  type: 'object',
  properties: {
    httpGet: { type: 'object', properties: { port: portOrName } },
    tcpSocket: { type: 'object', properties: { port: portOrName } },
    grpc: { type: 'object', properties: { port } }
  }
}
const container = {
  type: 'object',
  properties: {
    ports: { type: 'array', items: { type: 'object', required: ['containerPort'], properties: { name: str, containerPort: port, protocol } } },
    readinessProbe: probe,
    livenessProbe: probe,
    startupProbe: probe
  }
}

function meta (required: string[]): object {
  return {
    type: 'object',
    required,
    properties: {
      name,
      namespace: name,
      uid: name,
      deletionTimestamp: str,
      labels: labelMap,
      annotations: labelMap,
      ownerReferences: { type: 'array', items: { type: 'object', required: ['kind', 'name'], properties: { kind: str, name: str } } }
    }
  }
}

export const SCHEMAS: Record<string, object> = {
  Namespace: { type: 'object', required: ['metadata'], properties: { metadata: meta(['name']) } },
  Node: { type: 'object', required: ['metadata'], properties: { metadata: meta(['name']) } },
  Pod: {
    type: 'object',
    required: ['metadata', 'spec'],
    properties: {
      metadata: meta(['name', 'namespace', 'uid']),
      spec: {
        type: 'object',
        properties: {
          nodeName: str,
          serviceAccountName: str,
          hostNetwork: { type: 'boolean' },
          containers: { type: 'array', items: container },
          // Sidecars (restartable init containers) may have probes too.
          initContainers: { type: 'array', items: container }
        }
      },
      status: {
        type: 'object',
        properties: {
          phase: str,
          podIP: str,
          podIPs: { type: 'array', items: { type: 'object', required: ['ip'], properties: { ip: str } } },
          hostIP: str,
          hostIPs: { type: 'array', items: { type: 'object', required: ['ip'], properties: { ip: str } } },
          conditions: { type: 'array', items: { type: 'object', required: ['type', 'status'], properties: { type: str, status: str } } }
        }
      }
    }
  },
  Service: {
    type: 'object',
    required: ['metadata', 'spec'],
    properties: {
      metadata: meta(['name', 'namespace']),
      spec: {
        type: 'object',
        properties: {
          clusterIP: str,
          clusterIPs: { type: 'array', items: str },
          selector: labelMap,
          publishNotReadyAddresses: { type: 'boolean' },
          ports: {
            type: 'array',
            items: {
              type: 'object',
              required: ['port'],
              properties: { name: str, port, protocol, targetPort: portOrName, appProtocol: str }
            }
          }
        }
      }
    }
  }
}

export const LIST_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'kind', 'items'],
  properties: {
    apiVersion: { const: 'v1' },
    kind: { const: 'List' },
    items: { type: 'array', items: { type: 'object', required: ['kind'], properties: { kind: name } } }
  }
}
