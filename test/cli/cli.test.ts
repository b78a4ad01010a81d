import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import t from 'tap';
import { readCbf } from '../../daemon/decode/cbf';
import { agreement, readColumns } from '../helpers/compare';
import { dataFile, needData, readData, repoRoot } from '../helpers/data';

const BIN = path.join(repoRoot, 'dist', 'daemon', 'cli', 'main.js');

function beamedge(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// For commands that must end by themselves: a hang is killed after ms and reported by its signal.
function beamedgeAsync(ms: number, ...args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, err });
    });
  });
}

const tmp = mkdtempSync(path.join(tmpdir(), 'beamedge-cli-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

t.test('help and usage errors', async (t) => {
  t.equal(beamedge('--help').code, 0);
  t.match(beamedge('--help').out, /decode.*\n.*integrate/s);
  for (const cmd of ['decode', 'integrate']) {
    const h = beamedge(cmd, '--help');
    t.equal(h.code, 0, `${cmd} --help`);
    t.match(h.out, new RegExp(`usage: beamedge ${cmd}`));
  }
  const wrong: string[][] = [
    [],
    ['frobnicate'],
    ['decode'],
    ['decode', 'a.cbf', 'b.cbf'],
    ['decode', 'a.cbf', '--bogus'],
    ['integrate', 'a.cbf', '--npt', '10', '--unit', 'q_nm^-1'],
    ['integrate', 'a.cbf', '--from-header', '--npt', 'ten', '--unit', 'q_nm^-1'],
    ['integrate', 'a.cbf', '--from-header', '--npt', '10', '--unit', 'furlongs'],
    ['integrate', 'a.cbf', '--from-header', '--npt', '10', '--unit', '2th_deg', '--split', 'full'],
    ['integrate', 'a.cbf', '--from-header', '--npt', '10', '--unit', '2th_deg', '--range', '5', '1'],
    ['integrate', 'a.cbf', '--from-header', '--npt', '10', '--unit', '2th_deg', '--polarization', '3'],
  ];
  for (const args of wrong) {
    const r = beamedge(...args);
    t.equal(r.code, 2, `exit 2: beamedge ${args.join(' ')}`);
    t.equal(r.err.trim().split('\n').length, 1, `one-line error: ${r.err.trim()}`);
  }
});

t.test('decode prints the frame facts and writes raw pixels', async (t) => {
  if (!needData(t)) return;
  const file = dataFile('cbf', 'thau_3_2_0001.cbf');
  const text = beamedge('decode', file);
  t.equal(text.code, 0);
  t.match(text.out, /shape\s+2527 x 2463/);
  t.match(text.out, /dtype\s+int32/);
  t.match(text.out, /min\s+-2\n/);
  t.match(text.out, /max\s+114000\n/);
  t.match(text.out, /md5\s+ok/);
  t.match(text.out, /decode\s+[\d.]+ ms \(\d+ Mpixel\/s\)/);
  const raw = path.join(tmp, 'thau.raw');
  const json = beamedge('decode', file, '--json', '--out', raw);
  const info = JSON.parse(json.out) as { shape: number[]; min: number; max: number; md5: string };
  t.same([info.shape, info.min, info.max, info.md5], [[2527, 2463], -2, 114000, 'ok']);
  t.equal(statSync(raw).size, 2527 * 2463 * 4);
  const pixels = readCbf(readData('cbf', 'thau_3_2_0001.cbf')).pixels;
  const written = new Int32Array(readFileSync(raw).buffer.slice(0));
  t.ok(written.every((v, i) => v === pixels[i]), 'raw file holds the decoded pixels, little-endian int32');
});

t.test('decode reports a corrupted file and a bad MD5', async (t) => {
  if (!needData(t)) return;
  const buf = Buffer.from(readData('cbf', 'in16c_010001.cbf'));
  const bad = path.join(tmp, 'bad-md5.cbf');
  // A byte-offset step changed in place: still decodes, but the MD5 no longer matches.
  const at = readCbf(buf).binary.dataOffset + 1000;
  t.not(buf[at], 0x80);
  buf[at] = buf[at] === 0x7f ? 0x7e : buf[at]! + 1;
  writeFileSync(bad, buf);
  const r = beamedge('decode', bad);
  t.equal(r.code, 1);
  t.match(r.err, /bad-md5.cbf: Content-MD5 mismatch/);
  const trunc = path.join(tmp, 'trunc.cbf');
  writeFileSync(trunc, buf.subarray(0, 5000));
  const r2 = beamedge('decode', trunc);
  t.equal(r2.code, 1);
  t.match(r2.err, /trunc.cbf: truncated CBF/);
});

t.test('integrate with a PONI file reproduces pyFAI golden output', async (t) => {
  if (!needData(t)) return;
  const poni = path.join(tmp, 'thau.poni');
  writeFileSync(poni, 'PixelSize1: 0.000172\nPixelSize2: 0.000172\nDistance: 0.351\nPoni1: 0.22479712\nPoni2: 0.21699692\nRot1: 0\nRot2: 0\nRot3: 0\nWavelength: 9.6859e-11\n');
  const r = beamedge('integrate', dataFile('cbf', 'thau_3_2_0001.cbf'), '--poni', poni, '--npt', '1000', '--unit', 'q_nm^-1', '--split', 'no', '--polarization', '0.99');
  t.equal(r.code, 0, r.err);
  t.match(r.out, /^# q_nm\^-1 I sigma sum_signal sum_variance sum_normalization count$/m);
  const ours = readColumns(r.out);
  const gold = readColumns(readData('golden', 'thau_3_2_0001_1d_no_csr_q_nm-1_1000_poisson.txt').toString('utf8'));
  t.equal(ours[0]!.length, 1000);
  const a = agreement([[ours[1]!, gold[1]!], [ours[2]!, gold[2]!]], (i) => gold[6]![i]! > 0);
  t.ok(a.fraction(1e-4) >= 0.999, `${a.within(1e-4)}/${a.bins} bins within 1e-4 through the CLI`);
});

t.test('integrate --from-header, several files, one bad, JSON and 2D', async (t) => {
  if (!needData(t)) return;
  const bad = path.join(tmp, 'garbage.cbf');
  writeFileSync(bad, 'not a cbf at all');
  const files = [dataFile('cbf', 'in16c_010001.cbf'), bad, dataFile('cbf', 'in16c_010001.cbf')];
  const r = beamedge('integrate', ...files, '--from-header', '--npt', '50', '--npt-azim', '8', '--unit', '2th_deg', '--json');
  t.equal(r.code, 1, 'exit 1 when a file failed');
  t.match(r.err, /garbage.cbf: not a CBF/);
  const docs = r.out.trim().split('\n').map((l) => JSON.parse(l) as { shape: number[]; intensity: number[]; radial: number[]; azimuthal: number[] });
  t.equal(docs.length, 2, 'the good files are still integrated');
  t.same(docs[0]!.shape, [8, 50]);
  t.equal(docs[0]!.intensity.length, 400);
  t.same(docs[0]!.intensity, docs[1]!.intensity);
  t.ok(docs[0]!.radial[0]! > 0 && docs[0]!.azimuthal[0]! < -150);
});

t.test('errors name the file: a directory, a missing file, a database that is not provenance', async (t) => {
  const dir = path.join(tmp, 'frames.d');
  mkdirSync(dir);
  const cases: [string[], RegExp][] = [
    [['decode', dir], new RegExp(`${dir}: is a directory, not a file`)],
    [['integrate', dir, '--from-header', '--npt', '10', '--unit', 'q_nm^-1'], new RegExp(`${dir}: is a directory, not a file`)],
    [['integrate', path.join(tmp, 'absent.cbf'), '--poni', dir, '--npt', '10', '--unit', 'q_nm^-1'], new RegExp(`${dir}: is a directory, not a file`)],
    [['decode', path.join(tmp, 'absent.cbf')], /absent\.cbf: no such file/],
    [['provenance', 'frames', '--db', path.join(tmp, 'absent.sqlite')], /absent\.sqlite: no such file \(no provenance database there\)/],
    [['provenance', 'frames', '--db', dir], new RegExp(`${dir}: is a directory, not a provenance database`)],
    [['provenance', 'frames', '--db', BIN], /main\.js: not an SQLite database/],
  ];
  const other = path.join(tmp, 'other.sqlite');
  new Database(other).exec('CREATE TABLE x (a)').close();
  cases.push([['provenance', 'events', '--db', other], /other\.sqlite: an SQLite database, but not beamedge provenance/]);
  for (const [args, want] of cases) {
    const r = beamedge(...args);
    t.equal(r.code, 1, `${args.join(' ')}: exit 1`);
    t.match(r.err, want, `${args.join(' ')}: ${r.err.trim()}`);
    t.notMatch(r.err, /EISDIR|illegal operation|unable to open database/, 'no bare system error');
  }
});

// The embedded broker's port is taken: run and demo stop at once with exit 1 (they used
// to print the error and then never exit); the demo's hint names --mqtt-port.
t.test('run and demo exit 1 when the embedded broker cannot listen', async (t) => {
  const holder = net.createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', () => resolve()));
  t.teardown(() => holder.close());
  const port = (holder.address() as net.AddressInfo).port;
  const cfg = path.join(tmp, 'inuse.yaml');
  writeFileSync(cfg, `instance: inuse\nmqtt: { embedded_host: 127.0.0.1, embedded_port: ${port} }\nhttp: { port: 0 }\ningest: { tcp: { port: 0 } }\nprovenance: { path: ${JSON.stringify(path.join(tmp, 'inuse.sqlite'))} }\n`);
  for (const [args, hint] of [
    [['run', '--config', cfg], /already in use/],
    [['demo', '--mqtt-port', String(port), '--http-port', '0', '--duration', '1', '--synthetic'], /--mqtt-port N/],
  ] as const) {
    const r = await beamedgeAsync(20_000, ...args);
    t.equal(r.code, 1, `${args[0]}: exit 1 (not killed by the test's timeout: signal ${r.signal})`);
    t.match(r.err, /cannot start the embedded MQTT broker/);
    t.match(r.err, hint);
  }
});
