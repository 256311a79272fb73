import { createRateLimiter } from '../client/limiter.js';
import { windowMs, type LimitSpec } from '../client/config.js';

/** Traffic shapes a simulation can offer. */
export const TRAFFIC = ['steady', 'burst', 'ramp', 'sawtooth'] as const;
export type Traffic = (typeof TRAFFIC)[number];

export interface SimulationOptions {
  limit: LimitSpec;
  traffic: Traffic;
  /** Simulated time, ms. Default: 6 windows (3 days for a daily quota). */
  durationMs?: number;
  /** Buckets on the chart. Default 60. */
  buckets?: number;
  /** Where simulated time starts (Unix ms). Default 2026-01-05T00:00:00Z, a Monday. */
  startMs?: number;
}

export interface Simulation {
  options: Required<Omit<SimulationOptions, 'limit'>> & { limit: LimitSpec };
  bucketMs: number;
  /** Per bucket: requests admitted and denied. */
  allowed: number[];
  denied: number[];
  /** The limit's average admission rate per bucket (limit per window, spread over the buckets). */
  ratePerBucket: number;
}


/**
 * Arrival times (ms from start) of a traffic shape: steady at twice the limit's rate; burst, a
 * light background and, every two windows, the whole limit just before a window boundary and
 * again just after it (where windows differ most); ramp climbs from 0 to 4× the limit's rate;
 * sawtooth climbs to 4× and drops, every 2 windows.
 */
export function arrivals(traffic: Traffic, limit: LimitSpec, durationMs: number): number[] {
  const w = windowMs(limit);
  const rate = (2 * limit.limit) / w; // requests per ms at twice the limit
  const out: number[] = [];
  if (traffic === 'steady') {
    const gap = 1 / rate;
    for (let t = gap / 2; t < durationMs; t += gap) out.push(Math.floor(t));
  } else if (traffic === 'burst') {
    // A light background (a third of the limit's rate) and, every two windows, a burst of the
    // whole limit just before a window boundary and another just after it.
    const gap = 3 / (rate / 2);
    for (let t = gap / 2; t < durationMs; t += gap) out.push(Math.floor(t));
    for (let edge = w; edge < durationMs; edge += 2 * w) {
      for (let i = 0; i < limit.limit; i++) out.push(Math.floor(edge - w / 20), Math.floor(edge + w / 20));
    }
    out.sort((a, b) => a - b);
  } else {
    // Inhomogeneous arrivals by integrating the rate: emit whenever the integral passes a whole request.
    const step = Math.max(1, Math.floor(w / 2000));
    const cycle = 2 * w;
    let acc = 0;
    for (let t = 0; t < durationMs; t += step) {
      const phase = traffic === 'ramp' ? t / durationMs : (t % cycle) / cycle;
      acc += 2 * rate * phase * step; // 0 → 2× the average rate = 4× the limit's rate
      while (acc >= 1) {
        out.push(t);
        acc -= 1;
      }
    }
  }
  return out;
}

/** Runs the traffic through the in-memory twin on a simulated clock: the same decisions Redis would make. */
export async function simulate(o: SimulationOptions): Promise<Simulation> {
  const w = windowMs(o.limit);
  const options = {
    limit: o.limit,
    traffic: o.traffic,
    durationMs: o.durationMs ?? 6 * Math.min(w, 86_400_000) * ('unit' in o.limit ? 0.5 : 1),
    buckets: o.buckets ?? 60,
    startMs: o.startMs ?? Date.UTC(2026, 0, 5),
  };
  let now = options.startMs;
  const limiter = createRateLimiter({ limits: o.limit, clock: () => now });
  const bucketMs = options.durationMs / options.buckets;
  const allowed = new Array<number>(options.buckets).fill(0);
  const denied = new Array<number>(options.buckets).fill(0);
  for (const t of arrivals(o.traffic, o.limit, options.durationMs)) {
    now = options.startMs + t;
    const d = await limiter.limit('sim');
    const i = Math.min(options.buckets - 1, Math.floor(t / bucketMs));
    if (d.allowed) allowed[i]!++;
    else denied[i]!++;
  }
  await limiter.close();
  return { options, bucketMs, allowed, denied, ratePerBucket: (o.limit.limit * bucketMs) / w };
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function duration(ms: number): string {
  if (ms === 0) return '0';
  if (ms >= 86_400_000) return `${+(ms / 86_400_000).toFixed(1)} d`;
  if (ms >= 3_600_000) return `${+(ms / 3_600_000).toFixed(1)} h`;
  if (ms >= 1000) return `${+(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms)} ms`;
}

/** A stacked bar chart of allowed (green) and denied (red) per bucket, with the limit's rate dashed. */
export function chartSvg(sim: Simulation, title?: string): string {
  const W = 720;
  const H = 260;
  const m = { left: 48, right: 16, top: 52, bottom: 36 };
  const plotW = W - m.left - m.right;
  const plotH = H - m.top - m.bottom;
  const totals = sim.allowed.map((a, i) => a + sim.denied[i]!);
  const max = Math.max(1, ...totals, sim.ratePerBucket) * 1.1;
  const y = (v: number) => m.top + plotH - (v / max) * plotH;
  const bw = plotW / sim.allowed.length;
  const l = sim.options.limit;
  const name = title ?? `${l.algo} — ${l.limit} per ${'unit' in l ? l.unit : duration(l.periodMs)}${'burst' in l && l.burst ? `, burst ${l.burst}` : ''} — ${sim.options.traffic} traffic`;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${m.left}" y="20" font-size="13" font-weight="bold" fill="#222">${esc(name)}</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = (max / 1.1) * (k / 4);
    parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${m.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end" fill="#555">${Math.round(v)}</text>`);
  }
  sim.allowed.forEach((a, i) => {
    const x = m.left + i * bw + 0.5;
    const d = sim.denied[i]!;
    parts.push(`<rect x="${x.toFixed(1)}" y="${y(a).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(y(0) - y(a)).toFixed(1)}" fill="#2e9d57"/>`);
    if (d > 0) parts.push(`<rect x="${x.toFixed(1)}" y="${y(a + d).toFixed(1)}" width="${Math.max(1, bw - 1).toFixed(1)}" height="${(y(a) - y(a + d)).toFixed(1)}" fill="#d64545"/>`);
  });
  parts.push(`<line x1="${m.left}" x2="${W - m.right}" y1="${y(sim.ratePerBucket).toFixed(1)}" y2="${y(sim.ratePerBucket).toFixed(1)}" stroke="#222" stroke-dasharray="5,4"/>`);
  parts.push(`<line x1="${m.left}" x2="${m.left}" y1="${m.top}" y2="${y(0)}" stroke="#888"/><line x1="${m.left}" x2="${W - m.right}" y1="${y(0)}" y2="${y(0)}" stroke="#888"/>`);
  for (let k = 0; k <= 6; k++) {
    const t = (sim.options.durationMs * k) / 6;
    const x = m.left + (plotW * k) / 6;
    parts.push(`<text x="${x.toFixed(1)}" y="${H - m.bottom + 16}" text-anchor="middle" fill="#555">${duration(t)}</text>`);
  }
  const lx = m.left;
  parts.push(
    `<rect x="${lx}" y="28" width="10" height="10" fill="#2e9d57"/><text x="${lx + 14}" y="37" fill="#333">allowed</text>`,
    `<rect x="${lx + 70}" y="28" width="10" height="10" fill="#d64545"/><text x="${lx + 84}" y="37" fill="#333">denied</text>`,
    `<line x1="${lx + 136}" x2="${lx + 160}" y1="33" y2="33" stroke="#222" stroke-dasharray="5,4"/><text x="${lx + 164}" y="37" fill="#333">the limit's average rate, per bar</text>`,
    `<text x="${m.left + plotW / 2}" y="${H - 6}" text-anchor="middle" fill="#555">simulated time (bars of ${duration(sim.bucketMs)}); requests per bar</text>`,
    '</svg>',
  );
  return parts.join('\n') + '\n';
}
