import { join } from 'node:path'
import { ferryError } from '../errors'
import { REPO_ROOT } from '../native/binding'
import { caObjects } from './ca-objects'
import { type KubeObject, kustomizeBuild, sortLegacy } from './kustomize'
import { applySettings, type InstallSettings } from './settings'
import { formatProblems, validateManifests } from './validate'
import { toYamlDocuments } from './yaml-out'

// `ferry install --render`: daemonset/ (the base or an overlay), built as kustomize
// builds it, with the user's --set options applied, checked against the Kubernetes
// schemas, printed as YAML. Nothing here talks to a cluster.

export const DAEMONSET_DIR = join(REPO_ROOT, 'daemonset')
export const OVERLAYS = Object.freeze(['base', 'small', 'production', 'tracing'])
export const DEFAULT_TRUST_DOMAIN = 'cluster.local'

export interface RenderOptions {
  /** `base` or the name of a directory under daemonset/overlays/. */
  readonly overlay: string
  readonly settings: InstallSettings
  /** Include the manifests (--render). */
  readonly manifests: boolean
  /** Include a new CA root: Secret ferry-ca-root and ConfigMap ferry-ca-root-cert (--generate-ca). */
  readonly generateCa: boolean
  /** Where daemonset/ is (tests point elsewhere). */
  readonly daemonsetDir?: string
}

export function overlayDir (overlay: string, root: string = DAEMONSET_DIR): string {
  if (!OVERLAYS.includes(overlay)) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: --overlay "${overlay}" is invalid: expected one of ${OVERLAYS.join(', ')}`)
  return overlay === 'base' ? join(root, 'base') : join(root, 'overlays', overlay)
}

/** The objects to print, in kustomize's order. Throws FERRY_ERR_CONFIG when they fail validation. */
export async function renderObjects (opts: RenderOptions): Promise<KubeObject[]> {
  const objects: KubeObject[] = []
  if (opts.manifests) objects.push(...kustomizeBuild(overlayDir(opts.overlay, opts.daemonsetDir)))
  if (opts.generateCa) {
    const trustDomain = opts.settings.get('trustDomain')
    objects.push(...await caObjects(typeof trustDomain === 'string' ? trustDomain : DEFAULT_TRUST_DOMAIN))
  }
  if (opts.manifests) applySettings(objects, opts.settings)
  else if (opts.settings.has('namespace')) applySettings(objects, new Map([['namespace', opts.settings.get('namespace')!]]))
  const problems = validateManifests(objects)
  if (problems.length > 0) throw ferryError('FERRY_ERR_CONFIG', `the rendered manifests are invalid:\n${formatProblems(problems)}`)
  return sortLegacy(objects)
}

export async function renderText (opts: RenderOptions, argv: readonly string[]): Promise<string> {
  const objects = await renderObjects(opts)
  const header = `# ferry install ${argv.join(' ')}\n# ${opts.manifests ? `daemonset/${opts.overlay === 'base' ? 'base' : `overlays/${opts.overlay}`}` : 'CA objects only'}; docs/install.md explains every object.\n`
  return toYamlDocuments(objects, header)
}
