// The lab of the controller drills (ca-outage.ts, restart-under-load.ts): two nodes,
// a client pod on node1 sending to a Service whose one pod is on node2, so every request
// crosses both agents and the mutual-TLS tunnel between them, and both nodes hold
// certificates that must be renewed (client's on node1, server's on node2).

export const OUTAGE_LAB = Object.freeze({
  namespace: 'outage',
  client: 'client',
  url: 'http://server.outage.svc.cluster.local:8080/'
})

export function outageLabManifest (): string {
  const server = "require('http').createServer((q, s) => s.end('ok\\\\n')).listen(8080, '::')"
  return `apiVersion: v1
kind: Node
metadata: { name: node1 }
---
apiVersion: v1
kind: Node
metadata: { name: node2 }
---
apiVersion: v1
kind: Namespace
metadata: { name: outage, labels: { ferry.dev/mesh: enabled } }
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: outage, labels: { app: client } }
spec:
  nodeName: node1
  serviceAccountName: client
  containers:
    - { name: main, image: node, command: ["sleep", "infinity"] }
---
apiVersion: v1
kind: Pod
metadata: { name: server, namespace: outage, labels: { app: server } }
spec:
  nodeName: node2
  serviceAccountName: server
  containers:
    - name: main
      image: node
      command: ["node", "-e"]
      args: ["${server}"]
      ports: [{ name: http, containerPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: server, namespace: outage }
spec:
  selector: { app: server }
  ports:
    - { name: http, port: 8080, targetPort: http }
`
}
