// The live page in a real browser: headless Chromium loads it from the
// daemon while frames flow, the profile plot and the frame preview are drawn
// again for newer frames, every file comes from the daemon itself (no CDN),
// and a screenshot is a real picture, not a blank page.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig } from '../../daemon/config/config';
import { Daemon } from '../../daemon/daemon';
import { FrameSender, Pacer } from '../../daemon/sim/sender';
import { framePool, SyntheticDetector } from '../../daemon/sim/synthetic';
import { createLogger } from '../../daemon/system/logger';
import { Browser, findChromium } from '../helpers/chromium';
import { need } from '../helpers/need';
import { decodePng, distinctColours } from '../helpers/png';

const WIDTH = 1280;
const HEIGHT = 1100;

interface Drawn {
  profileFrames: number[];
  previewFrames: number[];
  previewSpots: number[];
}

// Resolves once the page has drawn the profile and the preview at least
// `times` more times, listing the frames each drawing showed: event-driven,
// the page announces each drawing.
const WAIT_FOR_DRAWINGS = (times: number) => `new Promise((resolve) => {
  const b = document.body;
  const out = { profileFrames: [], previewFrames: [], previewSpots: [] };
  const check = (e) => {
    if (e && e.detail === 'profile') out.profileFrames.push(Number(b.dataset.profileFrame));
    if (e && e.detail === 'preview') { out.previewFrames.push(Number(b.dataset.previewFrame)); out.previewSpots.push(Number(b.dataset.previewSpots)); }
    if (out.profileFrames.length >= ${times} && out.previewFrames.length >= ${times}) {
      document.removeEventListener('beamedge:drawn', check);
      resolve(out);
    }
  };
  document.addEventListener('beamedge:drawn', check);
})`;

t.test('the live page in headless Chromium updates while frames flow', async (t) => {
  const chromium = findChromium();
  if (!need(t, !!chromium, 'chromium is not installed (Debian: apt-get install chromium)', '.ci/run installs chromium')) return;
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-browser-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = path.join(dir, 'c.yaml');
  writeFileSync(
    cfg,
    `instance: page\nhttp: { port: 0 }\nmqtt: { embedded_port: 0 }\ningest: { tcp: { port: 0 } }\nworkers: { threads: 1 }\nrings: { slots: 4, slot_mb: 4 }\n` +
      `provenance: { path: ${JSON.stringify(path.join(dir, 'p.sqlite'))}, batch_ms: 50 }\nstats: { interval_ms: 250 }\n` +
      `pipeline:\n  spots: { algorithm: dispersion, max_published: 100 }\n  veto: { method: spots, min_spots: 10 }\n  integrate: { npt: 500 }\n`,
  );
  const d = await Daemon.start({ loaded: loadConfig(cfg), configPath: cfg, watchConfig: false, log: createLogger('error') });
  t.teardown(() => d.stop('test end'));
  const url = d.httpUrl!;
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/, `the page is at ${url}`);

  // Frames flow for as long as the test runs: hits (kept, with spots) and blanks.
  const pool = framePool(new SyntheticDetector({ seed: 5 }), 8, 0.5);
  const sender = await FrameSender.connect('127.0.0.1', d.tcpPort!);
  let streaming = true;
  const stream = (async () => {
    const pacer = new Pacer(8);
    for (let i = 0; streaming; i++) {
      await sender.send({ series: 'page', frame: i, encoding: 'cbf' }, pool[i % pool.length]!.cbf);
      await pacer.next();
    }
  })();
  t.teardown(async () => {
    streaming = false;
    await stream;
    await sender.close();
  });

  const browser = await Browser.launch(chromium!, WIDTH, HEIGHT);
  t.teardown(() => browser.close());
  const requested: string[] = [];
  browser.on((method, params) => {
    if (method === 'Network.requestWillBeSent') requested.push((params.request as { url: string }).url);
  });
  const page = await browser.open(url, WIDTH, HEIGHT);
  t.equal(await page.evaluate<string>('document.title'), 'beamedge', 'the page loaded');

  const drawn = await page.evaluate<Drawn>(WAIT_FOR_DRAWINGS(3));
  t.ok(new Set(drawn.profileFrames).size >= 2, `the profile plot was redrawn for newer frames (${drawn.profileFrames.join(', ')})`);
  t.ok(new Set(drawn.previewFrames).size >= 2, `the preview was redrawn for newer frames (${drawn.previewFrames.join(', ')})`);
  t.ok(drawn.profileFrames.every((f, i) => i === 0 || f > drawn.profileFrames[i - 1]!), 'each profile drawn is of a later frame');
  t.ok(drawn.previewSpots.some((n) => n >= 10), `the preview marks the kept frames' spots (${drawn.previewSpots.join(', ')} markers)`);
  const shown = await page.evaluate<{ epoch: string; instance: string; kept: number; events: number }>(
    `({ epoch: document.getElementById('epoch').textContent, instance: document.getElementById('instance').textContent, kept: Number(document.getElementById('t-kept').textContent), events: document.getElementById('events').children.length })`,
  );
  t.equal(shown.epoch, '1', 'the configuration epoch is shown');
  t.equal(shown.instance, 'page', 'the instance is shown');
  t.ok(shown.kept > 0, `kept frames are counted (${shown.kept})`);
  t.ok(shown.events >= 1, 'recent events are listed (the start)');

  const origin = new URL(url).origin;
  const elsewhere = requested.filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && u !== 'about:blank');
  t.same(elsewhere, [], `every request goes to the daemon (${requested.length} requests): the page works offline`);

  const rect = await page.evaluate<{ x: number; y: number; w: number; h: number }>(
    `(() => { const r = document.getElementById('preview').getBoundingClientRect(); return { x: Math.round(r.x), y: Math.round(r.y), w: Math.round(r.width), h: Math.round(r.height) }; })()`,
  );
  const png = await page.screenshot();
  const writeTo = process.env.BEAMEDGE_SCREENSHOT;
  if (writeTo) writeFileSync(writeTo, png);
  const image = decodePng(png);
  t.same([image.width, image.height], [WIDTH, HEIGHT], 'the screenshot has the window size');
  t.ok(distinctColours(image) > 100, `the screenshot is not a blank page (${distinctColours(image)} colours)`);
  const visible = { w: Math.min(rect.w, WIDTH - rect.x), h: Math.min(rect.h, HEIGHT - rect.y) };
  t.ok(visible.w > 100 && visible.h > 100, `the preview is on screen (${visible.w}x${visible.h} at ${rect.x},${rect.y})`);
  t.ok(distinctColours(image, rect.x, rect.y, visible.w, visible.h) > 20, 'the preview shows a picture, not one colour');
});
