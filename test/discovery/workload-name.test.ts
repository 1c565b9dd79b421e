import t from 'tap'
import { workloadName } from '../../src/discovery/workload-name'

// Istio's workload names: the object that runs the pod, found through its controller
// owner reference.

const rs = (name: string, controller?: boolean): { kind: string, name: string, controller?: boolean } => ({ kind: 'ReplicaSet', name, ...(controller === undefined ? {} : { controller }) })

t.test('a Deployment\'s pod: the ReplicaSet\'s name without its pod-template-hash', async (t) => {
  t.equal(workloadName('reviews-v1-5b4f8d7c9d-abcde', { app: 'reviews', 'pod-template-hash': '5b4f8d7c9d' }, [rs('reviews-v1-5b4f8d7c9d', true)]), 'reviews-v1', 'the Deployment, not the app label')
  t.equal(workloadName('p', { 'pod-template-hash': 'abc' }, [rs('standalone-rs', true)]), 'standalone-rs', 'a ReplicaSet whose name does not end in the hash: its own name')
  t.equal(workloadName('p', {}, [rs('web-7d9f8c6b5d', true)]), 'web-7d9f8c6b5d', 'no hash label: the ReplicaSet itself (Istio does not guess)')
})

t.test('a CronJob\'s Job: the Job\'s name without its schedule suffix; other owners by name', async (t) => {
  t.equal(workloadName('backup-28911520-xyz', {}, [{ kind: 'Job', name: 'backup-28911520', controller: true }]), 'backup')
  t.equal(workloadName('migrate-abc', {}, [{ kind: 'Job', name: 'migrate', controller: true }]), 'migrate', 'a Job of its own')
  t.equal(workloadName('db-0', { app: 'postgres' }, [{ kind: 'StatefulSet', name: 'db', controller: true }]), 'db')
  t.equal(workloadName('agent-x', {}, [{ kind: 'DaemonSet', name: 'node-agent', controller: true }]), 'node-agent')
  t.equal(workloadName('p', { deploymentconfig: 'legacy' }, [{ kind: 'ReplicationController', name: 'legacy-3', controller: true }]), 'legacy', 'OpenShift\'s DeploymentConfig label')
})

t.test('the controller reference decides; a bare pod is its own workload', async (t) => {
  t.equal(workloadName('p', { 'pod-template-hash': 'h1' }, [{ kind: 'ConfigMap', name: 'cm', controller: false }, rs('api-h1', true)]), 'api')
  t.equal(workloadName('p', { 'pod-template-hash': 'h1' }, [rs('api-h1')]), 'api', 'a hand-written reference without the controller flag')
  t.equal(workloadName('p', {}, [{ kind: 'ConfigMap', name: 'cm', controller: false }]), 'p', 'no controller: the pod')
  t.equal(workloadName('lonely', { app: 'x' }, undefined), 'lonely')
  t.equal(workloadName('lonely', { app: 'x' }, []), 'lonely')
})
