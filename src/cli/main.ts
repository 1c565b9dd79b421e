import { FerryError } from '../errors'

// The `ferry` command: a table of subcommands, each in its own file, loaded lazily
// so that `ferry lab status` does not pay for the proxy's imports.
type Command = (argv: string[]) => Promise<number>

const COMMANDS: Record<string, { summary: string, load: () => Promise<Command> }> = {
  agent: { summary: 'run the per-node agent and proxy', load: async () => (await import('./agent-command.js')).agentCommand },
  cni: { summary: 'install or uninstall the ferry-cni plugin on this node (the DaemonSet\'s init container runs install)', load: async () => (await import('./cni-command.js')).cniCommand },
  controller: { summary: 'run the certificate authority that agents get workload certificates from', load: async () => (await import('./controller-command.js')).controllerCommand },
  install: { summary: 'print the Kubernetes manifests (DaemonSet, controller, CRDs, RBAC) with your options', load: async () => (await import('./install-command.js')).installCommand },
  lab: { summary: 'simulated Kubernetes nodes on this host (up, down, status, exec, logs)', load: async () => (await import('./lab-command.js')).labCommand },
  policy: { summary: 'check a connection against authorization policies and explain the decision; validate policy files', load: async () => (await import('./policy-command.js')).policyCommand },
  route: { summary: 'explain which route, rule and backend a request to a Service takes', load: async () => (await import('./route-command.js')).routeCommand },
  status: { summary: 'each node\'s agent: readiness, pods, configuration, certificates and their renewal (--lab NAME)', load: async () => (await import('./status-command.js')).statusCommand }
}

function usage (): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`)
  return `usage: ferry <command> [options]\n\ncommands:\n${lines.join('\n')}\n  version    print the version\n`
}

export async function main (argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage())
    return name === undefined ? 2 : 0
  }
  if (name === 'version' || name === '--version') {
    process.stdout.write(`${require('../../../package.json').version as string}\n`)
    return 0
  }
  const entry = COMMANDS[name]
  if (entry === undefined) {
    process.stderr.write(`ferry: unknown command "${name}"\n\n${usage()}`)
    return 2
  }
  try {
    const command = await entry.load()
    return await command(rest)
  } catch (err) {
    return reportError(err)
  }
}

/** Prints an error for a person: the stable code first, then what went wrong. */
export function reportError (err: unknown): number {
  if (err instanceof FerryError) {
    process.stderr.write(`ferry: ${err.code}: ${err.message}${err.errno !== undefined ? ` (${err.errno})` : ''}\n`)
    return 1
  }
  if (err instanceof Error && (err as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    process.stderr.write(`ferry: ${err.message}\n`)
    return 2
  }
  process.stderr.write(`ferry: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  return 1
}
