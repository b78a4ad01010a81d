// Timing helpers shared by the benchmarks: medians over repeated runs.

export interface Timing {
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  reps: number;
}

export function measure(fn: () => unknown, reps: number, warmup = 3): Timing {
  for (let i = 0; i < warmup; i++) fn();
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  ms.sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))]!;
  return { medianMs: at(0.5), p10Ms: at(0.1), p90Ms: at(0.9), reps };
}

export interface Row {
  metric: string;
  ours: string;
  reference: string;
  ratio: string;
}

export function printTable(title: string, rows: Row[]): void {
  const head: Row = { metric: 'metric', ours: 'beamedge', reference: 'reference', ratio: 'ratio' };
  const all = [head, ...rows];
  const w = (k: keyof Row) => Math.max(...all.map((r) => r[k].length));
  const line = (r: Row) => `| ${r.metric.padEnd(w('metric'))} | ${r.ours.padStart(w('ours'))} | ${r.reference.padStart(w('reference'))} | ${r.ratio.padStart(w('ratio'))} |`;
  const rule = `|${'-'.repeat(w('metric') + 2)}|${'-'.repeat(w('ours') + 1)}:|${'-'.repeat(w('reference') + 1)}:|${'-'.repeat(w('ratio') + 1)}:|`;
  process.stdout.write(`\n${title}\n\n${line(head)}\n${rule}\n${rows.map(line).join('\n')}\n`);
}
