import { ferryError } from '../errors'
import { OVERLAYS, renderText } from '../install/render'
import { parseSettings, settingsUsage } from '../install/settings'
import { parseCommandOptions } from '../config/cli-args'

// `ferry install …`: argument parsing and output only; the work is in src/install/.

export const INSTALL_USAGE = `usage: ferry install --render [--overlay base] [--set KEY=VALUE]... [--generate-ca]
       ferry install --generate-ca [--set namespace=NS] [--set trustDomain=TD]

Prints Ferry's Kubernetes manifests (daemonset/, built as \`kubectl kustomize\` builds
it) with your options, checked against the Kubernetes schemas, for
\`| kubectl apply -f -\`. Nothing is sent to a cluster.

  --render        the manifests: namespace, CRDs, RBAC, controller, agent DaemonSet
  --overlay       ${OVERLAYS.join(', ')} (daemonset/base or daemonset/overlays/NAME)
  --generate-ca   also a new CA root: Secret ferry-ca-root (the private key!) and
                  ConfigMap ferry-ca-root-cert. Apply it once; a second run makes a
                  different root. Alone, it prints only those two objects.
  --set KEY=VALUE, repeatable:
${settingsUsage().split('\n').map((l) => `  ${l}`).join('\n')}

See docs/install.md.
`

const CA_ONLY_KEYS = new Set(['namespace', 'trustDomain'])

export async function installCommand (argv: string[]): Promise<number> {
  if (argv.includes('-h') || argv.includes('--help')) {
    process.stdout.write(INSTALL_USAGE)
    return 0
  }
  const values = parseCommandOptions('install', argv, {
    render: { type: 'boolean' },
    'generate-ca': { type: 'boolean' },
    overlay: { type: 'string' },
    set: { type: 'string', multiple: true }
  })
  const manifests = values.render === true
  const generateCa = values['generate-ca'] === true
  if (!manifests && !generateCa) {
    process.stderr.write(`ferry install: say what to print: --render and/or --generate-ca\n\n${INSTALL_USAGE}`)
    return 2
  }
  const settings = parseSettings(values.set ?? [])
  if (!manifests) {
    const ignored = [...settings.keys()].filter((k) => !CA_ONLY_KEYS.has(k))
    if (ignored.length > 0) throw ferryError('FERRY_ERR_INVALID_ARG', `ferry install: --set ${ignored.join(', ')} has no effect without --render (--generate-ca alone takes namespace and trustDomain)`)
    if (values.overlay !== undefined) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry install: --overlay has no effect without --render')
  }
  const text = await renderText({ overlay: values.overlay ?? 'base', settings, manifests, generateCa }, argv)
  process.stdout.write(text)
  return 0
}
