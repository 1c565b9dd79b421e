import type { OutlierTracker, PoolGate, RetryBudget } from '../limits/types'
import type { ConnectionPoolLimits, OutlierDetection } from './model'

// Where the router gets the node-wide limits of a backend (src/limits/ makes them over
// the memory every worker shares). Keys name a backend the same way in every worker
// ("namespace/name:port" and "#subset"), so all workers reach the same limit.

export interface NodeLimits {
  /** The retry budget of a backend's Service port. */
  budgetFor (key: string): RetryBudget
  /** The connection-pool limits of a backend, as its DestinationRule sets them. */
  poolFor (key: string, limits: ConnectionPoolLimits): PoolGate
  /**
   * Outlier detection of a backend's endpoints, as its DestinationRule sets it;
   * `endpointCount`: the backend's endpoints now (max ejection percent, the last healthy one).
   */
  outliersFor (key: string, policy: OutlierDetection, endpointCount?: () => number): OutlierTracker
}
