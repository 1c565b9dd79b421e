import { parseCommandOptions } from '../../config/cli-args'
import { ferryError } from '../../errors'
import { createLogger } from '../../telemetry/logger'
import { serveUntilSignal } from '../../cli/serve'
import { procCgroup } from '../proc'
import { Kubelet } from './kubelet'

// `ferry lab kubelet --state-file FILE --node NODE`: a node's kubelet (src/lab/kubelet/),
// started by `ferry lab up` in <node cgroup>/kubelet and the node's network namespace.
// Not in the usage: it is the lab's part, not a user's command. Logs are JSON on stdout
// (<lab>/logs/kubelet-<node>.log): one line per probe result, container restart and
// status write.

export async function kubeletCommand (argv: string[]): Promise<number> {
  const values = parseCommandOptions('lab kubelet', argv, { 'state-file': { type: 'string' }, node: { type: 'string' } })
  const stateFile = values['state-file']
  const node = values.node
  if (stateFile === undefined || node === undefined) throw ferryError('FERRY_ERR_INVALID_ARG', 'ferry lab kubelet: --state-file and --node are required')
  const log = createLogger({ name: 'ferry-lab-kubelet' })
  log.info({ node, cgroup: procCgroup(process.pid) }, 'kubelet started')
  const kubelet = await Kubelet.start({ stateFile, node, log })
  return await serveUntilSignal(kubelet, log, 'lab kubelet')
}
