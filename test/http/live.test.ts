// The live feed's parts on their own: the preview picture against values
// worked out by hand, reason labels, and the hub's promise to do nothing
// while no page is open.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import t from 'tap';
import { LiveHub, MAX_CLIENTS } from '../../daemon/http/live';
import { reasonClass, Stats } from '../../daemon/stats/stats';
import { makePreview } from '../../daemon/workers/preview';
import type { ResultHeader } from '../../daemon/workers/protocol';

t.test('preview: 2x2 blocks of a 1024 x 600 frame, brightest valid pixel, log scale, masked blocks 0', async (t) => {
  const rows = 1024;
  const cols = 600;
  const px = new Int32Array(rows * cols);
  const mask = new Uint8Array(rows * cols);
  px[100 * cols + 201] = 999; // block (50, 100): log10(1000) = 3, the top of the scale
  px[101 * cols + 200] = 5; // same block, not the brightest
  px[10 * cols + 11] = 9; // block (5, 5): log10(10) = 1, a third of the scale
  // Block (0, 0): every pixel masked, one by the mask, three as markers (negative).
  mask[0] = 1;
  px[1] = -1;
  px[cols] = -2;
  px[cols + 1] = -1;
  // Block (0, 1): a masked pixel brighter than the rest does not count.
  mask[2] = 1;
  px[2] = 100000;
  px[3] = 99;
  const p = makePreview({ pixels: px, shape: [rows, cols], mask });
  t.same(p.info, { width: 300, height: 512, binning: 2, log10Min: 0, log10Max: 3 });
  const at = (r: number, c: number) => p.image[r * 300 + c];
  t.equal(at(50, 100), 255, 'the brightest block is 255');
  t.equal(at(5, 5), 1 + Math.round(254 / 3), 'log10(10) of 3 decades');
  t.equal(at(0, 0), 0, 'a block with no valid pixel is 0 (masked)');
  t.equal(at(0, 1), 1 + Math.round((254 * 2) / 3), 'log10(100): the masked 100000 is left out');
  t.equal(at(300, 200), 1, 'background (0) is the bottom of the scale');

  const sat = makePreview({ pixels: new Float32Array([NaN, 3, 1e9, 0]), shape: [2, 2], maxValid: 1e6 });
  t.same(Array.from(sat.image), [0, 255, 0, 1], 'NaN and pixels above maxValid are masked; a small frame is not binned');
  const u16 = makePreview({ pixels: new Uint16Array([65535, 7, 0, 65534]), shape: [2, 2], maxValid: 65534 });
  t.same(Array.from(u16.image), [0, 1 + Math.round((254 * Math.log10(8)) / Math.log10(65535)), 1, 255], '16-bit frames: 65535 above maxValid is masked');
  t.throws(() => makePreview({ pixels: new Int32Array(6), shape: [2, 2] }), /rows x cols/, 'a shape that does not match the pixels is refused');
  const neg = makePreview({ pixels: new Float32Array([-5, -5, -5, -5]), shape: [2, 2], negativeValid: true });
  t.same(Array.from(neg.image), [1, 1, 1, 1], 'calibrated frames: negative pixels are valid (shown at the bottom)');
});

t.test('reason labels drop the numbers', async (t) => {
  t.equal(reasonClass('lit 3 < 30'), 'lit <');
  t.equal(reasonClass('spots 52 >= 10'), 'spots >=');
  t.equal(reasonClass('prescaled keep (1 in 5), lit 3 < 30'), 'prescaled keep');
  t.equal(reasonClass('not a CBF: /data/x_0001.cbf'), 'not a CBF');
  t.equal(reasonClass(''), 'none');
  const s = new Stats();
  for (let i = 0; i < 40; i++) s.decided('error', `failure kind${String.fromCharCode(97 + (i % 26))}${String.fromCharCode(97 + Math.floor(i / 26))}`);
  t.equal(s.byReason.error.size, 33, 'at most 32 reasons per decision, then "other"');
  t.equal(s.byReason.error.get('other'), 8);
  t.equal(s.totals.errored, 40, 'every frame counted in the totals');
});

class FakeResponse extends EventEmitter {
  chunks: string[] = [];
  ended = false;
  writeHead(): this {
    return this;
  }
  write(s: string): boolean {
    this.chunks.push(s);
    return true;
  }
  end(): void {
    this.ended = true;
    this.emit('close');
  }
}

t.test('the hub does nothing while no page is open, and feeds the pages that are', async (t) => {
  let asked = 0;
  let cancelled = 0;
  let askedResolve: () => void = () => {};
  const hub = new LiveHub({ status: () => ({ state: 'running' }), requestPreview: () => (asked++, askedResolve()), cancelPreview: () => cancelled++ });
  t.teardown(() => hub.close());
  t.equal(hub.watching, false);
  for (let i = 0; i < 1000; i++) hub.event({ time: '', level: 'info', kind: 'k', message: `m${i}` });
  t.equal(asked, 0, 'no preview asked for with nobody watching');

  const res = new FakeResponse();
  t.ok(hub.attach(res as unknown as ServerResponse));
  t.equal(hub.watching, true);
  t.match(res.chunks[0], /^event: hello\ndata: /, 'a page gets the recent history at once');
  const hello = JSON.parse(res.chunks[0]!.split('data: ')[1]!) as { events: { message: string }[] };
  t.equal(hello.events.length, 50, 'recent events are bounded');
  t.equal(hello.events[49]!.message, 'm999');
  await new Promise<void>((r) => (askedResolve = r));
  t.ok(asked >= 1, 'a picture is asked for while watched');

  const header = { series: 's', frame: 7, decision: 'kept', reason: 'lit 40 >= 30', unit: 'q_nm^-1' } as ResultHeader;
  hub.kept(header, { radial: new Float64Array([1, 2, 3]), intensity: new Float32Array([10, NaN, 30]), sigma: new Float32Array([1, 2, 3]) });
  const profile = await new Promise<string>((resolve) => {
    const write = res.write.bind(res);
    res.write = (s: string) => (s.startsWith('event: profile') && resolve(s), write(s));
  });
  t.match(JSON.parse(profile.split('data: ')[1]!), { frame: 7, radial: [1, 2, 3], intensity: [10, null, 30], sigma: [1, 2, 3] }, 'the profile as sent (NaN as null)');

  const more = Array.from({ length: MAX_CLIENTS }, () => new FakeResponse());
  t.same(more.map((r) => hub.attach(r as unknown as ServerResponse)), [...Array(MAX_CLIENTS - 1).fill(true), false], `at most ${MAX_CLIENTS} pages`);
  for (const r of [res, ...more]) r.emit('close');
  t.equal(hub.watching, false, 'closed pages are forgotten');
  const before = asked;
  hub.stats({} as never);
  t.equal(asked, before, 'and the timer is stopped');
  t.ok(cancelled >= 1, 'a picture still asked for is cancelled');
});
