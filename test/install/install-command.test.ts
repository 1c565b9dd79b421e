import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { loadRootCa } from '../../src/controller/root-ca'
import { isFerryError } from '../../src/errors'
import { type KubeObject, kustomizeBuild } from '../../src/install/kustomize'
import { renderObjects, overlayDir } from '../../src/install/render'
import { parseSettings, SETTINGS } from '../../src/install/settings'
import { formatProblems, validateManifests } from '../../src/install/validate'
import { ferry, REPO } from '../helpers/cli'

// `ferry install --render [--set …]`: the same manifests as daemonset/ with the user's
// options, validated; unknown keys and bad values refused by name. Rendering only:
// nothing here reaches a cluster.

function parse (text: string): KubeObject[] {
  return parseAllDocuments(text, { version: '1.1' }).map((d) => d.toJS() as KubeObject).filter((o) => o !== null)
}

function find (objects: KubeObject[], kind: string, name: string): any {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name)
  if (o === undefined) throw new Error(`no ${kind} ${name}`)
  return o
}

function render (sets: string[], overlay = 'base', generateCa = false): Promise<KubeObject[]> {
  return renderObjects({ overlay, settings: parseSettings(sets), manifests: true, generateCa })
}

t.test('without --set it prints daemonset/ as built', async (t) => {
  for (const overlay of ['base', 'small', 'production']) {
    t.same(await render([], overlay), kustomizeBuild(overlayDir(overlay)), overlay)
  }
})

t.test('each --set key changes what it says, and the result still validates', async (t) => {
  const objects = await render([
    'image=registry.example.com/mesh/ferry:1.2.3',
    'imagePullPolicy=Always',
    'namespace=mesh-system',
    'trustDomain=prod.example.com',
    'logLevel=debug',
    'controller.replicas=3',
    'controller.certTtl=12h',
    'agent.resources.requests.cpu=300m',
    'agent.resources.requests.memory=300Mi',
    'agent.resources.limits.cpu=2',
    'agent.resources.limits.memory=2Gi',
    'controller.resources.requests.cpu=20m',
    'controller.resources.requests.memory=80Mi',
    'controller.resources.limits.cpu=500m',
    'controller.resources.limits.memory=300Mi'
  ])
  t.equal(formatProblems(validateManifests(objects)), '')
  const ds = find(objects, 'DaemonSet', 'ferry-agent')
  const deploy = find(objects, 'Deployment', 'ferry-controller')
  const agent = ds.spec.template.spec.containers[0]
  const controller = deploy.spec.template.spec.containers[0]
  for (const c of [...ds.spec.template.spec.initContainers, agent, controller]) {
    t.equal(c.image, 'registry.example.com/mesh/ferry:1.2.3', `${c.name} image`)
    t.equal(c.imagePullPolicy, 'Always')
  }
  for (const o of objects) {
    if (o.kind === 'Namespace') t.equal(o.metadata.name, 'mesh-system')
    else if (!['CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) t.equal(o.metadata.namespace, 'mesh-system', `${o.kind} ${o.metadata.name} moved`)
  }
  t.same(find(objects, 'ClusterRoleBinding', 'ferry-agent').subjects, [{ kind: 'ServiceAccount', name: 'ferry-agent', namespace: 'mesh-system' }])
  t.ok(agent.args.includes('--ca-address=ferry-controller.mesh-system.svc:15012'), 'agents dial the controller in its new namespace')
  t.ok(controller.args.includes('--serving-name=ferry-controller.mesh-system.svc'), 'and the controller\'s certificate names it')
  t.ok(agent.args.includes('--trust-domain=prod.example.com') && controller.args.includes('--trust-domain=prod.example.com'))
  t.ok(agent.args.includes('--log-level=debug') && controller.args.includes('--log-level=debug'))
  t.ok(controller.args.includes('--cert-ttl=12h'))
  t.equal(deploy.spec.replicas, 3)
  t.same(agent.resources, { requests: { cpu: '300m', memory: '300Mi' }, limits: { cpu: '2', memory: '2Gi' } })
  t.same(controller.resources, { requests: { cpu: '20m', memory: '80Mi' }, limits: { cpu: '500m', memory: '300Mi' } })
  t.equal(JSON.stringify(objects).includes('ferry-system'), false, 'no reference to ferry-system is left')
})

t.test('unknown keys and bad values are refused by name', async (t) => {
  const refused = (sets: string[]): string => {
    try {
      parseSettings(sets)
    } catch (err) {
      if (isFerryError(err, 'FERRY_ERR_INVALID_ARG')) return err.message
      throw err
    }
    return 'accepted'
  }
  t.match(refused(['agent.resources.request.cpu=1']), /unknown --set key "agent\.resources\.request\.cpu" \(did you mean "agent\.resources\.requests\.cpu"\?\); known keys: image, /)
  t.match(refused(['replicas=2']), /unknown --set key "replicas"/)
  t.match(refused(['image']), /--set "image" is invalid: expected KEY=VALUE/)
  t.match(refused(['image=Not An Image']), /--set image="Not An Image" is invalid: expected an image reference/)
  t.match(refused(['logLevel=loud']), /--set logLevel="loud" is invalid: expected one of fatal, error, warn, info, debug, trace, silent/)
  t.match(refused(['namespace=Ferry_System']), /--set namespace="Ferry_System" is invalid/)
  t.match(refused(['trustDomain=bad/domain']), /--set trustDomain="bad\/domain" is invalid: expected a trust domain/)
  t.match(refused(['agent.resources.limits.memory=lots']), /expected a Kubernetes quantity/)
  t.match(refused(['controller.replicas=0']), /expected a whole number from 1 to 9/)
  t.match(refused(['controller.certTtl=forever']), /--set controller\.certTtl="forever" is invalid: expected a duration/)
  t.match(refused(['logLevel=info', 'logLevel=debug']), /--set logLevel is given twice/)
  // Found by test/fuzz/cli-values.test.ts: a key that names a property of every object is no setting.
  for (const key of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) t.match(refused([`${key}=x`]), new RegExp(`unknown --set key "${key}"`), key)
  t.equal(refused(['image=ferry@sha256:' + 'a'.repeat(64), 'agent.resources.limits.memory=1.5Gi']), 'accepted')
  t.ok(Object.keys(SETTINGS).length >= 10)
})

t.test('--generate-ca adds a working CA root: a Secret for the controller and a ConfigMap for agents', async (t) => {
  const objects = await render(['trustDomain=prod.example.com', 'namespace=mesh'], 'base', true)
  t.equal(formatProblems(validateManifests(objects)), '')
  const secret = find(objects, 'Secret', 'ferry-ca-root')
  const cm = find(objects, 'ConfigMap', 'ferry-ca-root-cert')
  t.equal(secret.metadata.namespace, 'mesh')
  const keyPem = Buffer.from(secret.data['root-key.pem'], 'base64').toString()
  const certPem = Buffer.from(secret.data['root-cert.pem'], 'base64').toString()
  t.equal(cm.data['root-cert.pem'], certPem, 'agents get the same root certificate')
  const root = await loadRootCa(keyPem, certPem, 'rendered Secret')
  t.match(root.cert.subject, /Ferry root CA prod\.example\.com/)
  const kinds = objects.map((o) => o.kind)
  t.ok(kinds.indexOf('ConfigMap') < kinds.indexOf('DaemonSet') && kinds.indexOf('Secret') < kinds.indexOf('Deployment'), 'applied before the workloads that mount them')
  const volumes = find(objects, 'Deployment', 'ferry-controller').spec.template.spec.volumes
  t.equal(volumes[0].secret.secretName, 'ferry-ca-root')
})

t.test('the ferry CLI (built): ferry install --render, --generate-ca alone, and errors', { skip: existsSync(join(REPO, 'dist', 'src', 'cli', 'install-command.js')) ? false : 'build first: npm run build:ts' }, async (t) => {
  const r = await ferry(['install', '--render', '--overlay', 'small', '--set', 'image=example.com/ferry:9', '--set', 'namespace=mesh'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^# ferry install --render --overlay small --set image=example\.com\/ferry:9 --set namespace=mesh\n/)
  t.same(parse(r.stdout), await render(['image=example.com/ferry:9', 'namespace=mesh'], 'small'), 'the CLI prints what the renderer builds')
  const ca = await ferry(['install', '--generate-ca'])
  t.equal(ca.code, 0, ca.stderr)
  t.same(parse(ca.stdout).map((o) => `${o.kind}/${o.metadata.name}`), ['ConfigMap/ferry-ca-root-cert', 'Secret/ferry-ca-root'])
  const unknown = await ferry(['install', '--render', '--set', 'imag=x'])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^ferry: FERRY_ERR_INVALID_ARG: ferry install: unknown --set key "imag" \(did you mean "image"\?\)/)
  const nothing = await ferry(['install'])
  t.equal(nothing.code, 2)
  t.match(nothing.stderr, /say what to print: --render and\/or --generate-ca/)
  const caOnly = await ferry(['install', '--generate-ca', '--set', 'logLevel=debug'])
  t.equal(caOnly.code, 1)
  t.match(caOnly.stderr, /--set logLevel has no effect without --render/)
  const help = await ferry(['install', '--help'])
  t.match(help.stdout, /agent\.resources\.limits\.memory/)
  t.match((await ferry(['--help'])).stdout, /install\s+print the Kubernetes manifests/)
})
