// The main thread's correlation coordinator against a stand-in for the
// worker pool (real accumulators, one per series): when messages fall due,
// how a series ends (idle, too many open, stop), and what it writes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { CorrelateConfig } from '../../daemon/config/config';
import { CorrelationAccumulator, type CorrelationState } from '../../daemon/correlate/accumulator';
import { CorrelationCoordinator, MAX_OPEN, type CorrelationSource } from '../../daemon/correlate/coordinator';
import { readNpy } from '../../daemon/calibrate/npy';
import { decodePayload, type CorrelationMessage } from '../../daemon/publish/messages';
import { SERIES_IDLE_MS } from '../../daemon/stats/hit-rates';
import { createLogger } from '../../daemon/system/logger';
import type { ResultHeader } from '../../daemon/workers/protocol';

const NQ = 4;
const NPHI = 10;

class Source implements CorrelationSource {
  readonly accs = new Map<string, CorrelationAccumulator>();
  add(series: string, seed: number): void {
    let a = this.accs.get(series);
    if (!a) this.accs.set(series, (a = new CorrelationAccumulator(NQ, NPHI, 'q_nm^-1', Float64Array.from({ length: NQ }, (_, i) => i))));
    a.add(Float64Array.from({ length: NQ * NPHI }, (_, k) => 10 + Math.sin(seed + k)), new Float64Array(NQ * NPHI).fill(1));
  }
  async correlation(series: string, pairs: Int32Array | null, end: boolean): Promise<{ states: CorrelationState[]; evicted: string[]; errors: string[] }> {
    const a = this.accs.get(series);
    if (end) this.accs.delete(series);
    return { states: a ? [pairs ? a.state(pairs) : a.state()] : [], evicted: [], errors: [] };
  }
  settled(): Promise<void> {
    return Promise.resolve();
  }
}

function setup(t: Test, cfg: Partial<CorrelateConfig> = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-coord-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const source = new Source();
  const published: CorrelationMessage[] = [];
  const rows: { series: string; frames: number; files: { sha256: string }[]; details?: Record<string, unknown> }[] = [];
  const events: { kind: string; details?: Record<string, unknown> }[] = [];
  const c = new CorrelationCoordinator({
    source,
    publish: (payload, format) => published.push(decodePayload<CorrelationMessage>(payload, format === 'json' ? 'application/json' : 'application/cbor')),
    recorder: { resultFiles: (r) => rows.push(r) },
    event: (_level, kind, _message, details) => events.push({ kind, ...(details ? { details } : {}) }),
    log: createLogger('error'),
    instance: 'x',
    format: () => 'json',
    config: () => ({ enabled: true, npt: NQ, npt_azim: NPHI, unit: 'q_nm^-1', range: null, q_pairs: [[0, 2]], publish_every: 2, max_mb: 1024, ...cfg }),
    outputDir: dir,
  });
  let seq = 0;
  const frame = (series: string, now: number) => {
    source.add(series, seq);
    c.accumulated({ seq: seq++, series, correlated: true, epoch: 3, calibration: 'abc' } as ResultHeader, now);
  };
  return { dir, source, published, rows, events, c, frame };
}

t.test('a message every publish_every frames; a series idle for SERIES_IDLE_MS ends with its files', async (t) => {
  const { published, rows, events, c, frame } = setup(t);
  // Each frame's result arrives after the previous message went out (the stand-in answers at once).
  for (let i = 0; i < 5; i++) {
    frame('a', 1000 + i);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  c.tick(1000 + 4 + SERIES_IDLE_MS - 1);
  await c.close();
  t.same(published.map((m) => [m.frames, m.final]), [[2, false], [4, false], [5, true]], 'at 2 and 4 frames, then the last');
  t.same(published[0]!.pairs.map((p) => [p.i, p.j]), [[0, 2]]);
  t.equal(published[0]!.autocorrelation.length, NQ * NPHI);
  t.equal(events.find((e) => e.kind === 'correlation_written')!.details!.why, 'daemon stopping', 'not idle yet: the stop ended it');
  t.equal(rows.length, 1);
  t.same(rows[0]!.details!.epochs, [3]);
});

t.test('idle series end on tick, and the files hold what the last message says', async (t) => {
  const { published, rows, events, c, frame } = setup(t);
  for (let i = 0; i < 3; i++) frame('b', 5000);
  c.tick(5000 + SERIES_IDLE_MS);
  await c.close();
  const written = events.find((e) => e.kind === 'correlation_written')!;
  t.match(String(written.details!.why), /no frame for 60 s/);
  const last = published.at(-1)!;
  t.ok(last.final);
  const files = last.files!;
  t.same(files.map((f) => f.name), ['c2.npy', 'pairs.npy', 'radial.npy', 'delta_deg.npy', 'meta.json']);
  const c2 = readNpy(readFileSync(files[0]!.path), '<f8', 'c2').data;
  let worst = 0;
  for (let i = 0; i < NQ; i++) for (let d = 0; d < NPHI; d++) worst = Math.max(worst, Math.abs(last.autocorrelation[i * NPHI + d]! - c2[(i * NQ + i) * NPHI + d]!));
  t.ok(worst < 1e-12, `C2(i, i) in the message = the file (worst ${worst.toExponential(1)})`);
  t.same(rows[0]!.files.map((f) => f.sha256), files.map((f) => f.sha256));
});

t.test(`more than ${MAX_OPEN} series open: the oldest ends`, async (t) => {
  const { events, c, frame, source } = setup(t, { publish_every: 1000 });
  for (let s = 0; s <= MAX_OPEN; s++) frame(`s${s}`, 1);
  await new Promise<void>((resolve) => setImmediate(resolve));
  await c.close();
  const ended = events.filter((e) => e.kind === 'correlation_written').map((e) => [e.details!.series, e.details!.why]);
  t.same(ended[0], ['s0', `more than ${MAX_OPEN} series open`]);
  t.equal(ended.length, MAX_OPEN + 1, 'the rest at stop');
  t.equal(source.accs.size, 0, 'every accumulator freed');
});
