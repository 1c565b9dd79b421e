// Hand-rolled horizontal bar charts: one SVG per figure, no dependencies.

export interface Bar { readonly label: string, readonly value: number | null }

const WIDTH = 640
const LABEL_W = 170
const BAR_H = 22
const GAP = 8
const TOP = 40

function escapeXml (s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string)
}

/** A compact number for a bar's end: 3 significant digits, thousands as k. */
export function formatValue (v: number): string {
  if (!Number.isFinite(v)) return 'n/a'
  if (Math.abs(v) >= 10_000) return `${(v / 1000).toFixed(1)}k`
  if (Math.abs(v) >= 100) return v.toFixed(0)
  if (Math.abs(v) >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

export function barChart (title: string, unit: string, bars: readonly Bar[]): string {
  const finite = bars.map((b) => b.value).filter((v): v is number => v !== null && Number.isFinite(v))
  const max = Math.max(0, ...finite)
  const plotW = WIDTH - LABEL_W - 90
  const height = TOP + bars.length * (BAR_H + GAP) + 10
  const rows = bars.map((b, i) => {
    const y = TOP + i * (BAR_H + GAP)
    const v = b.value
    const w = v === null || !Number.isFinite(v) || max === 0 ? 0 : Math.max(1, (v / max) * plotW)
    const text = v === null ? 'n/a' : `${formatValue(v)} ${unit}`
    return `  <text x="${LABEL_W - 8}" y="${y + BAR_H / 2 + 4}" text-anchor="end">${escapeXml(b.label)}</text>\n` +
      `  <rect x="${LABEL_W}" y="${y}" width="${w.toFixed(1)}" height="${BAR_H}" fill="${b.label.startsWith('ferry') ? '#2b6cb0' : b.label.startsWith('haproxy') ? '#c05621' : b.label.startsWith('nginx') ? '#2f855a' : '#718096'}"/>\n` +
      `  <text x="${(LABEL_W + w + 6).toFixed(1)}" y="${y + BAR_H / 2 + 4}">${escapeXml(text)}</text>`
  })
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">\n` +
    `  <text x="10" y="22" font-size="14" font-weight="bold">${escapeXml(title)}</text>\n` +
    rows.join('\n') + '\n</svg>\n'
}
