import { Counter, Gauge, Registry } from 'prom-client'

// What the configuration watcher exports, on a registry the caller owns (the agent's, so
// /metrics shows them; a test's own, so tests do not share counters).

export const CONFIG_METRIC_NAMES = Object.freeze({
  rejected: 'ferry_config_rejected_total',
  generation: 'ferry_config_generation',
  stale: 'ferry_config_stale'
})

export class ConfigMetrics {
  readonly registry: Registry
  private readonly rejected: Counter
  private readonly generation: Gauge
  private readonly stale: Gauge

  constructor (registry: Registry = new Registry()) {
    this.registry = registry
    const registers = [registry]
    this.rejected = new Counter({ name: CONFIG_METRIC_NAMES.rejected, help: 'Configuration changes rejected as invalid (the last good configuration kept serving)', registers })
    this.generation = new Gauge({ name: CONFIG_METRIC_NAMES.generation, help: 'Generation of the configuration snapshot in use (0: none yet)', registers })
    this.stale = new Gauge({ name: CONFIG_METRIC_NAMES.stale, help: '1 while the configuration on disk is invalid and an older snapshot (or none) is in use', registers })
  }

  applied (generation: number): void {
    this.generation.set(generation)
    this.stale.set(0)
  }

  rejectedChange (): void {
    this.rejected.inc()
    this.stale.set(1)
  }
}
