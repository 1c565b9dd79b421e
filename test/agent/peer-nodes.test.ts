import t from 'tap'
import type { ClusterSnapshot, Pod } from '../../src/discovery/model'
import { peerNodeAddresses } from '../../src/agent/peer-nodes'

// The addresses exempt from the kernel's SYN rate on the tunnel port: the other nodes'
// (guards that this node's own address, and unscheduled pods, are not among them).

const pod = (name: string, nodeName: string | null, hostIPs: string[]): Pod => ({ name, nodeName, hostIPs } as unknown as Pod)

t.test('the addresses of the nodes running the snapshot\'s other pods, each once', async (t) => {
  const s = {
    pods: [pod('a', 'n1', ['10.0.0.1', 'fd00::1']), pod('b', 'n1', ['10.0.0.1']), pod('c', 'n2', ['10.0.0.2']), pod('d', 'n3', ['10.0.0.3']), pod('e', null, [])]
  } as unknown as ClusterSnapshot
  t.same(peerNodeAddresses(s, 'n2').sort(), ['10.0.0.1', '10.0.0.3', 'fd00::1'])
  t.same(peerNodeAddresses(s, 'elsewhere').sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3', 'fd00::1'])
})
