// p99 latency against load, one line per server, as a self-contained SVG
// (log-log axes; no dependencies).

const COLORS = { neuroplex: '#d62728', 'neuroplex-baseline': '#ff9896', hocuspocus: '#1f77b4', 'y-websocket': '#2ca02c' }
const W = 760
const H = 470
const M = { left: 70, right: 190, top: 40, bottom: 60 }

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;')

/**
 * `runs`: results of fanout and capacity runs ({ server, clients, rate,
 * expectedPerS, p99, lost, part }). A (clients, rate) measured twice keeps
 * the fan-out run (the longer window). Runs that lost updates are hollow.
 */
export function plotSvg (runs, { limitMs = 250 } = {}) {
  const byServer = new Map()
  for (const r of runs) {
    if (!Number.isFinite(r.p99)) continue
    const key = `${r.clients}/${r.rate}`
    let m = byServer.get(r.server)
    if (!m) byServer.set(r.server, (m = new Map()))
    const prev = m.get(key)
    if (!prev || (prev.part !== 'fanout' && r.part === 'fanout')) m.set(key, r)
  }
  const points = [...byServer.values()].flatMap((m) => [...m.values()])
  if (points.length === 0) return '<svg xmlns="http://www.w3.org/2000/svg"/>'
  const xs = points.map((p) => p.expectedPerS)
  const ys = points.map((p) => p.p99).concat([limitMs])
  const x0 = Math.pow(10, Math.floor(Math.log10(Math.min(...xs))))
  const x1 = Math.pow(10, Math.ceil(Math.log10(Math.max(...xs))))
  const y0 = Math.pow(10, Math.floor(Math.log10(Math.max(0.1, Math.min(...ys)))))
  const y1 = Math.pow(10, Math.ceil(Math.log10(Math.max(...ys))))
  const pw = W - M.left - M.right
  const ph = H - M.top - M.bottom
  const sx = (x) => M.left + (Math.log10(x) - Math.log10(x0)) / (Math.log10(x1) - Math.log10(x0)) * pw
  const sy = (y) => M.top + ph - (Math.log10(Math.max(y, y0)) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) * ph
  const o = []
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`)
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`)
  o.push(`<text x="${M.left}" y="22" font-size="15" font-weight="bold">Fan-out: p99 latency (send → applied at a receiver) against load</text>`)
  // Grid and ticks: decades, with 2 and 5 between.
  for (let d = x0; d <= x1; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k
      if (v > x1) break
      const X = sx(v).toFixed(1)
      o.push(`<line x1="${X}" y1="${M.top}" x2="${X}" y2="${M.top + ph}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`)
      o.push(`<text x="${X}" y="${M.top + ph + 16}" text-anchor="middle" fill="#444">${esc(short(v))}</text>`)
    }
  }
  for (let d = y0; d <= y1; d *= 10) {
    for (const k of [1, 2, 5]) {
      const v = d * k
      if (v > y1) break
      const Y = sy(v).toFixed(1)
      o.push(`<line x1="${M.left}" y1="${Y}" x2="${M.left + pw}" y2="${Y}" stroke="${k === 1 ? '#ccc' : '#eee'}"/>`)
      o.push(`<text x="${M.left - 6}" y="${Number(Y) + 4}" text-anchor="end" fill="#444">${esc(short(v))}</text>`)
    }
  }
  o.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`)
  o.push(`<text x="${M.left + pw / 2}" y="${H - 18}" text-anchor="middle">load: deliveries asked per second = clients × (clients − 1) × rate (log)</text>`)
  o.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">p99 latency, ms (log)</text>`)
  const LY = sy(limitMs).toFixed(1)
  o.push(`<line x1="${M.left}" y1="${LY}" x2="${M.left + pw}" y2="${LY}" stroke="#555" stroke-dasharray="6 4"/>`)
  o.push(`<text x="${M.left + 4}" y="${Number(LY) - 4}" fill="#555">${limitMs} ms (capacity limit)</text>`)
  let legendY = M.top + 10
  for (const [server, m] of byServer) {
    const color = COLORS[server] || '#000'
    const pts = [...m.values()].sort((a, b) => a.expectedPerS - b.expectedPerS || a.p99 - b.p99)
    o.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${pts.map((p) => `${sx(p.expectedPerS).toFixed(1)},${sy(p.p99).toFixed(1)}`).join(' ')}"/>`)
    for (const p of pts) {
      const lost = p.lost > 0
      o.push(`<circle cx="${sx(p.expectedPerS).toFixed(1)}" cy="${sy(p.p99).toFixed(1)}" r="4" fill="${lost ? 'white' : color}" stroke="${color}" stroke-width="2">` +
        `<title>${esc(`${server} C=${p.clients} R=${p.rate}: p99 ${p.p99.toFixed(1)} ms${lost ? `, ${p.lost} not delivered in time` : ''}`)}</title></circle>`)
    }
    const lx = M.left + pw + 15
    o.push(`<line x1="${lx}" y1="${legendY}" x2="${lx + 24}" y2="${legendY}" stroke="${color}" stroke-width="2"/>`)
    o.push(`<circle cx="${lx + 12}" cy="${legendY}" r="4" fill="${color}"/>`)
    o.push(`<text x="${lx + 30}" y="${legendY + 4}">${esc(server)}</text>`)
    legendY += 20
  }
  const lx = M.left + pw + 15
  o.push(`<circle cx="${lx + 12}" cy="${legendY + 6}" r="4" fill="white" stroke="#555" stroke-width="2"/>`)
  o.push(`<text x="${lx + 30}" y="${legendY + 10}">updates lost or</text>`)
  o.push(`<text x="${lx + 30}" y="${legendY + 24}">later than 2 s</text>`)
  o.push(`<text x="${lx}" y="${legendY + 50}" fill="#444">Points: (clients, rate)</text>`)
  o.push(`<text x="${lx}" y="${legendY + 64}" fill="#444">= (50,10), (100,20), then</text>`)
  o.push(`<text x="${lx}" y="${legendY + 78}" fill="#444">200 clients at 10, 20, 40 …</text>`)
  o.push(`<text x="${lx}" y="${legendY + 92}" fill="#444">updates/s each</text>`)
  o.push('</svg>')
  return o.join('\n') + '\n'
}

function short (v) {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`
  return `${+v.toFixed(2)}`
}
