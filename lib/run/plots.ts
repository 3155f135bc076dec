// Report charts: vega-lite specifications compiled and rendered to SVG by vega (headless, no canvas),
// then converted to PNG by sharp.

import { writeFileSync } from 'node:fs';

export type Row = Record<string, string | number | null>;

async function renderPng(spec: Record<string, unknown>, file: string): Promise<void> {
  const vegaLite = require('vega-lite') as typeof import('vega-lite');
  const vega = require('vega') as typeof import('vega');
  const compiled = vegaLite.compile(spec as unknown as Parameters<typeof vegaLite.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG(2);
  view.finalize();
  const sharp = require('sharp') as typeof import('sharp');
  writeFileSync(file, await sharp(Buffer.from(svg)).png().toBuffer());
}

const base = {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  background: 'white',
  config: { font: 'sans-serif' },
};

/** Training loss against step, one line per stage (and per run when `run` is set). */
export function lossChart(rows: Row[], title: string, file: string): Promise<void> {
  const hasRun = rows.some((row) => row.run !== undefined);
  return renderPng(
    {
      ...base,
      title,
      width: 520,
      height: 240,
      data: { values: rows },
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step within the stage' },
        y: { field: 'loss', type: 'quantitative', title: 'loss' },
        color: { field: 'stage', type: 'nominal' },
        ...(hasRun ? { strokeDash: { field: 'run', type: 'nominal' } } : {}),
      },
    },
    file,
  );
}

/** Grouped bars: `value` (a fraction) per `group` along x, one bar per `series`. */
export function barChart(
  rows: Row[],
  options: { title: string; group: string; series: string; yTitle: string },
  file: string,
): Promise<void> {
  return renderPng(
    {
      ...base,
      title: options.title,
      data: { values: rows },
      width: { step: 18 },
      height: 220,
      mark: 'bar',
      encoding: {
        column: { field: options.group, type: 'nominal', title: null, header: { labelOrient: 'bottom' } },
        x: { field: options.series, type: 'nominal', title: null, axis: null, sort: null },
        y: {
          field: 'value',
          type: 'quantitative',
          title: options.yTitle,
          scale: { domain: [0, 1] },
          axis: { format: '%' },
        },
        color: {
          field: options.series,
          type: 'nominal',
          sort: null,
          legend: { orient: 'bottom', columns: 3 },
        },
      },
    },
    file,
  );
}
