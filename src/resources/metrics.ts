import { Counter, Gauge, Registry } from 'prom-client'
import { OBJECT_STATES, countByState, type ObjectReport } from './reports'

// What a configuration source exports, on a registry the caller owns (the agent's, so
// /metrics shows them; the controller's; a test's own, so tests do not share counters).
//
//   <prefix>_objects{state}              objects of the configuration in force, by
//                                        state (accepted, degraded, refused)
//   <prefix>_object_reports_total{state} objects that became degraded or refused (or
//                                        changed how), counted once per change
// with prefix ferry_config on agents, ferry_controller_config on the controller.

export const CONFIG_METRIC_NAMES = Object.freeze({
  rejected: 'ferry_config_rejected_total',
  generation: 'ferry_config_generation',
  stale: 'ferry_config_stale',
  objects: 'ferry_config_objects',
  reports: 'ferry_config_object_reports_total'
})

export class ObjectMetrics {
  private readonly objects: Gauge<'state'>
  private readonly reports: Counter<'state'>

  constructor (registry: Registry, prefix = 'ferry_config') {
    const registers = [registry]
    this.objects = new Gauge({ name: `${prefix}_objects`, help: 'Configuration objects read, by state: accepted (as written), degraded (enforced narrower than written, or not at all), refused (not as written; see /debug/config)', labelNames: ['state'], registers })
    this.reports = new Counter({ name: `${prefix}_object_reports_total`, help: 'Objects that became degraded or refused, or changed how, counted once per change', labelNames: ['state'], registers })
    for (const s of OBJECT_STATES) this.objects.set({ state: s }, 0)
  }

  /** The states of a new round, and the reports that changed since the last one. */
  observe (reports: readonly ObjectReport[], changed: readonly ObjectReport[]): void {
    const counts = countByState(reports)
    for (const s of OBJECT_STATES) this.objects.set({ state: s }, counts[s])
    for (const r of changed) if (r.state !== 'accepted') this.reports.inc({ state: r.state })
  }
}

export class ConfigMetrics {
  readonly registry: Registry
  readonly objects: ObjectMetrics
  private readonly rejected: Counter
  private readonly generation: Gauge
  private readonly stale: Gauge

  constructor (registry: Registry = new Registry()) {
    this.registry = registry
    const registers = [registry]
    this.rejected = new Counter({ name: CONFIG_METRIC_NAMES.rejected, help: 'Configuration states with a refused object or that could not be read at all (the last good version of what was refused kept serving)', registers })
    this.generation = new Gauge({ name: CONFIG_METRIC_NAMES.generation, help: 'Generation of the configuration snapshot in use (0: none yet)', registers })
    this.stale = new Gauge({ name: CONFIG_METRIC_NAMES.stale, help: '1 while part of the configuration is not in force as written: an object refused (an earlier version, or nothing, applies in its place) or the source unreadable', registers })
    this.objects = new ObjectMetrics(registry)
  }

  /** A snapshot in force; `stale` when some object of it is refused. */
  applied (generation: number, stale = false): void {
    this.generation.set(generation)
    this.stale.set(stale ? 1 : 0)
  }

  /** A state with refused objects, or one that could not be read: counted, and stale until fixed. */
  rejectedChange (): void {
    this.rejected.inc()
    this.stale.set(1)
  }
}
