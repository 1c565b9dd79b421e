import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from './wait'

// A real Prometheus server (Debian's `prometheus` package, scripts/setup.sh installs it)
// for tests: started on a free loopback port with a scrape configuration pointed at the
// given targets, every second; waits until every target is up; evaluates PromQL through
// its HTTP API (/api/v1/query). Its data lives in a temporary directory removed by stop().

export const PROMETHEUS_BIN = process.env.FERRY_TEST_PROMETHEUS ?? '/usr/bin/prometheus'

export interface ScrapeTarget {
  /** "host:port" */
  readonly address: string
  /** Default /metrics. */
  readonly path?: string
  /** Extra target labels (e.g. node). */
  readonly labels?: Readonly<Record<string, string>>
  /** A bearer token to scrape with. */
  readonly bearerToken?: string
}

export interface PromSample {
  readonly metric: Record<string, string>
  readonly value: number
}

export interface Prometheus {
  readonly url: string
  /** Instant query at `time` (seconds; default now): a vector's samples, or a scalar as one sample with no labels. */
  query (promql: string, time?: number): Promise<PromSample[]>
  /**
   * Resolves after Prometheus has scraped every target at least `n` more times (each
   * target's lastScrape moved on), with the time (seconds) of the latest of those scrapes:
   * a query at that time + less than the interval sees them as the newest samples.
   */
  scrapes (n?: number): Promise<number>
  stop (): Promise<void>
}

/** A port nothing listens on now (the kernel's pick for a socket bound and closed). */
async function freePort (): Promise<number> {
  const s = createServer()
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
  const port = (s.address() as { port: number }).port
  await new Promise((resolve) => s.close(resolve))
  return port
}

function scrapeConfig (targets: readonly ScrapeTarget[]): string {
  // One job per target: each may have its own path and token. JSON is valid YAML.
  return JSON.stringify({
    global: { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' },
    scrape_configs: targets.map((t, i) => ({
      job_name: `target${i}`,
      metrics_path: t.path ?? '/metrics',
      ...(t.bearerToken === undefined ? {} : { authorization: { type: 'Bearer', credentials: t.bearerToken } }),
      static_configs: [{ targets: [t.address], labels: { ...t.labels } }]
    }))
  }, null, 2)
}

interface TargetsReply { data: { activeTargets: Array<{ health: string, lastScrape: string, scrapeUrl: string, lastError: string }> } }

export async function startPrometheus (targets: readonly ScrapeTarget[], opts: { timeoutMs?: number } = {}): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-prometheus-'))
  const config = join(dir, 'prometheus.yml')
  writeFileSync(config, scrapeConfig(targets))
  let child: ChildProcess | null = null
  let stderr = ''
  const stop = async (): Promise<void> => {
    const c = child
    child = null
    if (c !== null && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((resolve) => c.once('exit', resolve))
      c.kill('SIGTERM')
      const timer = setTimeout(() => c.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    }
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    const port = await freePort()
    const url = `http://127.0.0.1:${port}`
    child = spawn(PROMETHEUS_BIN, [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn'
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr?.on('data', (c: Buffer) => { stderr = (stderr + String(c)).slice(-4000) })
    const started = child
    const api = async <T>(path: string): Promise<T> => {
      if (started.exitCode !== null) throw new Error(`prometheus exited (${started.exitCode}): ${stderr}`)
      const res = await fetch(url + path)
      const body = await res.json() as { status: string, error?: string } & T
      if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`)
      return body
    }
    const targetStates = async (): Promise<TargetsReply['data']['activeTargets']> => (await api<TargetsReply>('/api/v1/targets')).data.activeTargets
    await waitFor(async () => {
      const active = await targetStates()
      return active.length === targets.length && active.every((t) => t.health === 'up')
    }, { timeoutMs: opts.timeoutMs ?? 30_000, intervalMs: 200, what: `prometheus to scrape ${targets.map((t) => t.address).join(', ')}` })
      .catch(async (err: Error) => {
        const active = await targetStates().catch(() => [])
        throw new Error(`${err.message}; targets: ${JSON.stringify(active.map((t) => ({ url: t.scrapeUrl, health: t.health, error: t.lastError })))}; stderr: ${stderr}`)
      })
    return {
      url,
      async query (promql, time) {
        const q = new URLSearchParams({ query: promql, ...(time === undefined ? {} : { time: String(time) }) })
        const body = await api<{ data: { resultType: string, result: any } }>(`/api/v1/query?${q.toString()}`)
        const { resultType, result } = body.data
        if (resultType === 'scalar') return [{ metric: {}, value: Number(result[1]) }]
        if (resultType !== 'vector') throw new Error(`prometheus: ${promql}: a ${String(resultType)}, not a vector`)
        return (result as Array<{ metric: Record<string, string>, value: [number, string] }>).map((s) => ({ metric: s.metric, value: Number(s.value[1]) }))
      },
      async scrapes (n = 1) {
        const since = (await targetStates()).map((t) => Date.parse(t.lastScrape))
        let seen = 0
        let last = since
        await waitFor(async () => {
          const now = (await targetStates()).map((t) => Date.parse(t.lastScrape))
          if (now.every((v, i) => v > (last[i] ?? 0))) { seen++; last = now }
          return seen >= n
        }, { timeoutMs: 10_000 + n * 2000, intervalMs: 50, what: `${n} more scrapes` })
        return Math.max(...last) / 1000
      },
      stop
    }
  } catch (err) {
    await stop()
    throw err
  }
}
