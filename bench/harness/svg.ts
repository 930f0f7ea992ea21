/**
 * Hand-written SVG line charts for the report (no plotting dependency): a percentile spectrum
 * (HdrHistogram style: x = log10(1 / (1 - percentile))) and latency over time.
 */

export interface Series {
  name: string;
  color: string;
  dashed?: boolean;
  points: [number, number][];
}

export interface Marker {
  x: number;
  label: string;
  color: string;
}

export interface Chart {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  /** x ticks: value and label */
  xTicks: [number, string][];
  xMin: number;
  xMax: number;
  /** log10 y axis */
  yLog: boolean;
  yMin?: number;
  yMax?: number;
  series: Series[];
  markers?: Marker[];
  /** legend entries of the marker colours */
  markerLegend?: { color: string; label: string }[];
}

export const COLORS: Record<string, string> = { slab: '#1f77b4', naive: '#d62728', ceiling: '#2ca02c' };

const W = 960;
const H = 520;
const M = { left: 80, right: 215, top: 60, bottom: 60 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function num(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

function niceLinearTicks(min: number, max: number): number[] {
  const span = max - min || 1;
  const step0 = span / 6;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + 1e-9; v += step) out.push(Math.round(v * 1e6) / 1e6);
  return out;
}

function fmtMs(v: number): string {
  if (v >= 1000) return `${v / 1000} s`;
  if (v >= 1) return `${v} ms`;
  return `${v} ms`;
}

export function renderChart(c: Chart): string {
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const ys = c.series.flatMap((s) => s.points.map((p) => p[1])).filter((y) => Number.isFinite(y) && (!c.yLog || y > 0));
  let yMin = c.yMin ?? (ys.length > 0 ? Math.min(...ys) : 1);
  let yMax = c.yMax ?? (ys.length > 0 ? Math.max(...ys) : 10);
  let yTicks: number[];
  if (c.yLog) {
    yMin = 10 ** Math.floor(Math.log10(Math.max(yMin, 0.001)));
    yMax = 10 ** Math.ceil(Math.log10(Math.max(yMax, yMin * 10)));
    yTicks = [];
    for (let e = Math.log10(yMin); e <= Math.log10(yMax) + 1e-9; e++) yTicks.push(Math.round(10 ** e * 1000) / 1000);
  } else {
    yMin = 0;
    yMax = yMax * 1.05 || 1;
    yTicks = niceLinearTicks(yMin, yMax);
  }
  const X = (x: number) => M.left + ((x - c.xMin) / (c.xMax - c.xMin)) * pw;
  const Y = (y: number) => {
    if (c.yLog) {
      const v = Math.max(y, yMin);
      return M.top + ph - ((Math.log10(v) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin))) * ph;
    }
    return M.top + ph - ((y - yMin) / (yMax - yMin)) * ph;
  };
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${M.left}" y="24" font-size="16" font-weight="bold">${esc(c.title)}</text>`);
  if (c.subtitle !== undefined) out.push(`<text x="${M.left}" y="42" fill="#555">${esc(c.subtitle)}</text>`);
  // grid and ticks
  for (const t of yTicks) {
    const y = Y(t);
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${num(y)}" y2="${num(y)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${num(y + 4)}" text-anchor="end">${esc(fmtMs(t))}</text>`);
  }
  if (c.yLog) {
    // minor grid: 2..9 x each decade
    for (let e = Math.log10(yMin); e < Math.log10(yMax) - 1e-9; e++) {
      for (let k = 2; k <= 9; k++) {
        const y = Y(k * 10 ** e);
        out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${num(y)}" y2="${num(y)}" stroke="#f3f3f3"/>`);
      }
    }
  }
  for (const [v, label] of c.xTicks) {
    const x = X(v);
    out.push(`<line x1="${num(x)}" x2="${num(x)}" y1="${M.top}" y2="${M.top + ph}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${num(x)}" y="${M.top + ph + 18}" text-anchor="middle">${esc(label)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(c.xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}${c.yLog ? ' (log scale)' : ''}</text>`);
  // markers (vertical ticks at the top of the plot)
  for (const m of c.markers ?? []) {
    const x = X(m.x);
    out.push(`<line x1="${num(x)}" x2="${num(x)}" y1="${M.top}" y2="${M.top + ph}" stroke="${m.color}" stroke-opacity="0.25" stroke-width="3"><title>${esc(m.label)}</title></line>`);
    out.push(`<path d="M${num(x - 5)} ${M.top - 9} L${num(x + 5)} ${M.top - 9} L${num(x)} ${M.top - 1} Z" fill="${m.color}"><title>${esc(m.label)}</title></path>`);
  }
  // series
  for (const s of c.series) {
    const pts = s.points.filter((p) => Number.isFinite(p[1]) && (!c.yLog || p[1] > 0));
    if (pts.length === 0) continue;
    const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${num(X(p[0]))} ${num(Y(p[1]))}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`);
  }
  // legend
  let ly = M.top + 10;
  for (const s of c.series) {
    const lx = M.left + pw + 14;
    out.push(`<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(s.name)}</text>`);
    ly += 20;
  }
  for (const m of c.markerLegend ?? []) {
    if (!(c.markers ?? []).some((x) => x.color === m.color)) continue;
    const lx = M.left + pw + 14;
    out.push(`<path d="M${lx + 8} ${ly - 5} L${lx + 18} ${ly - 5} L${lx + 13} ${ly + 3} Z" fill="${m.color}"/>`);
    out.push(`<text x="${lx + 32}" y="${ly + 4}">${esc(m.label)}</text>`);
    ly += 20;
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** x positions and labels of a percentile spectrum: 0%, 90%, 99%, ... 99.999%. */
export const SPECTRUM_TICKS: [number, string][] = [
  [0, '0%'],
  [1, '90%'],
  [2, '99%'],
  [3, '99.9%'],
  [4, '99.99%'],
  [5, '99.999%'],
];
