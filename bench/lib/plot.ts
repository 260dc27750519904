/**
 * Plots for the bench report, as plain SVG (no dependency): one bar chart of medians per group
 * that measures milliseconds (cold start per runtime, exec latency, ...), and a line chart of
 * start-up time as the number of boxes grows (the scale group's "Startup as boxes grow" table).
 */
import type { GroupResult } from "./group.js";

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function barChart(title: string, bars: { label: string; value: number; baseline: boolean }[]): string {
  // wide enough for the longest label (about 7 px a character at 13 px)
  const labelW = Math.max(360, ...bars.map((b) => b.label.length * 7 + 16));
  const barW = 420;
  const rowH = 26;
  const top = 40;
  const max = Math.max(...bars.map((b) => b.value), 1e-9);
  const min = Math.min(...bars.map((b) => b.value).filter((v) => v > 0), max);
  // A wide spread (more than 20×: a microVM's boot beside a namespaces start) is drawn on
  // a log scale from 1 ms, or the short bars would all be one pixel.
  const log = max / min > 20;
  const scale = (v: number) => (log ? Math.log10(Math.max(v, 1)) / Math.log10(Math.max(max, 10)) : v / max);
  const height = top + bars.length * rowH + (log ? 40 : 20);
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const w = Math.max(1, scale(b.value) * barW);
    return [
      `<text x="${labelW - 8}" y="${y + 17}" text-anchor="end">${esc(b.label)}</text>`,
      `<rect x="${labelW}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" fill="${b.baseline ? "#9aa5b1" : "#2f6fdb"}"/>`,
      `<text x="${labelW + w + 6}" y="${y + 17}">${b.value.toFixed(1)} ms</text>`,
    ].join("");
  });
  if (log)
    rows.push(`<text x="${labelW}" y="${height - 12}" fill="#555">log scale (bar length ∝ log10 ms)</text>`);
  return svg(labelW + barW + 110, height, title, rows.join("\n"));
}

function lineChart(
  title: string,
  points: { x: number; y: number }[],
  xLabel: string,
  yLabel: string,
): string {
  const W = 640;
  const H = 320;
  const left = 60;
  const bottom = H - 50;
  const maxX = Math.max(...points.map((p) => p.x), 1);
  const maxY = Math.max(...points.map((p) => p.y), 1e-9);
  const px = (x: number) => left + (x / maxX) * (W - left - 30);
  const py = (y: number) => bottom - (y / maxY) * (bottom - 50);
  const path = points
    .map((p, i) => `${i === 0 ? "M" : "L"}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`)
    .join(" ");
  const dots = points
    .map(
      (p) =>
        `<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="4" fill="#2f6fdb"/><text x="${px(p.x).toFixed(1)}" y="${(py(p.y) - 8).toFixed(1)}" text-anchor="middle">${p.y.toFixed(2)}</text>`,
    )
    .join("\n");
  const axes = `<line x1="${left}" y1="${bottom}" x2="${W - 20}" y2="${bottom}" stroke="#333"/><line x1="${left}" y1="${bottom}" x2="${left}" y2="40" stroke="#333"/>
<text x="${(W + left) / 2}" y="${H - 12}" text-anchor="middle">${esc(xLabel)}</text>
<text x="16" y="${(bottom + 40) / 2}" transform="rotate(-90 16 ${(bottom + 40) / 2})" text-anchor="middle">${esc(yLabel)}</text>
${points.map((p) => `<text x="${px(p.x).toFixed(1)}" y="${bottom + 18}" text-anchor="middle">${p.x}</text>`).join("")}`;
  return svg(
    W,
    H,
    title,
    `${axes}\n<path d="${path}" fill="none" stroke="#2f6fdb" stroke-width="2"/>\n${dots}`,
  );
}

function svg(width: number, height: number, title: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="13" role="img">
<title>${esc(title)}</title>
<rect width="100%" height="100%" fill="white"/>
<text x="12" y="24" font-size="15" font-weight="bold">${esc(title)}</text>
${body}
</svg>
`;
}

export function renderPlots(groups: GroupResult[]): { file: string; svg: string }[] {
  const out: { file: string; svg: string }[] = [];
  for (const group of groups) {
    const bars = group.rows
      .filter((r) => r.unit === "ms" && r.result.ok)
      .map((r) => ({
        label: r.label,
        value: r.result.ok ? r.result.stats.median : 0,
        baseline: r.role === "baseline",
      }));
    if (bars.length > 0)
      out.push({ file: `${group.id}.svg`, svg: barChart(`${group.title} — median ms`, bars) });
    const growth = group.extraTables.find((t) => t.title.startsWith("Startup as boxes grow"));
    if (growth) {
      const points = growth.rows
        .map((r) => ({ x: Number(r[0]), y: Number.parseFloat(r[1] ?? "") }))
        .filter((p) => Number.isFinite(p.y));
      if (points.length > 0)
        out.push({
          file: `${group.id}-growth.svg`,
          svg: lineChart("Time until all boxes are up", points, "boxes brought up at once", "seconds"),
        });
    }
  }
  return out;
}
