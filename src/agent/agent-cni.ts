import type { Registry } from 'prom-client'
import { CniConfKeeper } from '../cni/conf-keeper'
import { cniEntry } from '../cni/entry'
import { uninstallCni } from '../cni/install'
import { type CniServer, startCniServer } from '../cni/server'
import { CniStateWriter } from '../cni/state-file'
import type { ClusterSnapshot } from '../discovery/model'
import type { Logger } from '../telemetry/logger'
import { CniEnrollment } from './cni-enroll'
import type { PodEnroller } from './enroller'
import type { AgentCniOptions, AgentKubernetesOptions } from './options'

// The agent's part in the ferry-cni plugin (--cni-*), started and stopped as one:
//   - the state file the plugin decides from, rewritten from each snapshot (src/cni/state-file.ts);
//   - the server on the plugin's socket and what it does (src/cni/server.ts, cni-enroll.ts);
//   - Ferry's entry kept in the node's CNI configuration (--cni-conf-dir, src/cni/conf-keeper.ts);
//   - on SIGTERM: the socket closes at the start of the drain (the plugin retries until
//     the next agent listens), and only when the agent's DaemonSet is being deleted
//     (--cni-daemonset, asked of the API server) is the plugin uninstalled. A restart
//     or an upgrade keeps the entry and the state file: meshed pods started meanwhile
//     wait for the next agent instead of starting outside the mesh;
//   - in an upgrade the plugin's socket is handed to the next agent (src/handoff/: the
//     same listening socket at the same path, `listenFd` there): handedOff() stops
//     serving it here without removing the file, and leaves the state file and the
//     entry to the next agent alone.

export interface AgentCniDeps {
  readonly options: AgentCniOptions
  readonly node: string
  readonly kubernetes: AgentKubernetesOptions | null
  readonly enroller: PodEnroller
  readonly current: () => ClusterSnapshot | null
  readonly log: Logger
  readonly registry: Registry
  /** The plugin's listening socket, taken over from the agent before this one (already at the socket's path). */
  readonly listenFd?: number
}

export class AgentCni {
  private deletion: Promise<boolean> | null = null
  /** The next agent serves the plugin: nothing of it is this agent's to write or remove. */
  private retired = false
  /** A new agent holds the plugin's socket (a takeover in progress): its file is not ours alone to remove. */
  private lent = false

  private constructor (
    private readonly deps: AgentCniDeps,
    private readonly state: CniStateWriter,
    private readonly handler: CniEnrollment,
    private readonly server: CniServer,
    private readonly keeper: CniConfKeeper | null
  ) {}

  static async start (deps: AgentCniDeps): Promise<AgentCni> {
    const { options, log } = deps
    const state = new CniStateWriter(options.entry.stateFile, deps.node, log)
    const handler = new CniEnrollment({ node: deps.node, enroller: deps.enroller, current: deps.current, log, ...(deps.kubernetes === null ? {} : { hostProc: deps.kubernetes.hostProc }) })
    const server = await startCniServer({ socketPath: options.entry.socket, handler, log, registry: deps.registry, ...(deps.listenFd === undefined ? {} : { listenFd: deps.listenFd }) })
    let keeper: CniConfKeeper | null = null
    if (options.confDir !== null) {
      keeper = new CniConfKeeper({ dir: options.confDir, entry: cniEntry(options.entry), log })
      try {
        await keeper.start()
      } catch (err) {
        keeper.close()
        await server.close()
        throw err
      }
    }
    return new AgentCni(deps, state, handler, server, keeper)
  }

  /** The plugin's listening socket (owned by the server), to hand to the next agent. */
  get fd (): number { return this.server.fd }

  onSnapshot (snapshot: ClusterSnapshot): void {
    if (this.retired) return
    this.state.update(snapshot)
    this.handler.onSnapshot(snapshot)
  }

  /** SIGTERM's first step: no more CNI requests here (and the deletion check starts). */
  async stopServing (): Promise<void> {
    this.deletion ??= this.daemonSetDeleting()
    await this.server.close({ keepSocketFile: this.retired || this.lent })
  }

  /** A takeover started (true) or was given up (false): while the socket is lent, closing keeps its file. */
  socketLent (lent: boolean): void { this.lent = lent }

  /**
   * The next agent has taken the plugin's socket over and serves it: stop serving it
   * here (requests in progress end unanswered; the plugin retries, reaching the next
   * agent), keep the socket file, and stop keeping the entry and the state file.
   */
  async handedOff (): Promise<void> {
    this.retired = true
    this.deletion = Promise.resolve(false) // an upgrade: the plugin stays installed
    this.keeper?.close()
    await this.server.close({ keepSocketFile: true })
  }

  /** Stops everything; uninstalls the plugin only when the agent's DaemonSet is being deleted. */
  async close (): Promise<void> {
    this.keeper?.close()
    this.deletion ??= this.daemonSetDeleting()
    await this.server.close({ keepSocketFile: this.retired || this.lent })
    if (!await this.deletion) return
    const { confDir, binDir, entry } = this.deps.options
    try {
      const r = uninstallCni({ confDir: confDir as string, binDir, stateFile: entry.stateFile })
      this.deps.log.info({ confs: r.confs, binaryRemoved: r.binaryRemoved, stateFileRemoved: r.stateFileRemoved }, 'ferry-cni uninstalled from this node')
      for (const err of r.errors) this.deps.log.error({ err: err.message, code: 'FERRY_ERR_CNI_CONF' }, 'cannot remove Ferry\'s entry from a CNI configuration')
    } catch (err) {
      this.deps.log.error({ err }, 'ferry-cni uninstall failed')
    }
  }

  private async daemonSetDeleting (): Promise<boolean> {
    const ds = this.deps.options.daemonSet
    if (ds === null) return false
    const { daemonSetDeletion } = require('../kubernetes/daemonset-deletion') as typeof import('../kubernetes/daemonset-deletion')
    const kubeconfig = this.deps.kubernetes?.kubeconfig ?? null
    const verdict = await daemonSetDeletion(kubeconfig === null ? {} : { file: kubeconfig }, ds.namespace, ds.name)
    this.deps.log.info({ daemonSet: `${ds.namespace}/${ds.name}`, uninstall: verdict.deleting, why: verdict.why }, verdict.deleting ? 'the agent\'s DaemonSet is being deleted: uninstalling ferry-cni' : 'stopping: ferry-cni stays installed (the next agent serves it)')
    return verdict.deleting
  }
}
