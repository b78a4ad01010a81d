// beamedge integrate -o DIR: one pyFAI-style .dat per input, read back with
// numpy (an independent parser) and compared with pyFAI 0.21.3's own profile
// of the same frame (the golden file); a progress bar on a terminal only.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { agreement, readColumns } from '../helpers/compare';
import { dataFile, needData, readData } from '../helpers/data';
import { BIN } from '../helpers/daemon-process';
import { need } from '../helpers/need';
import { hasFabio, needReference, runPython } from '../helpers/python';

// The golden files' geometry (shared/data/golden/README).
const PONI = `poni_version: 2
Detector: Pilatus6M
Detector_config: {}
Distance: 0.351
Poni1: 0.22479712
Poni2: 0.21699692
Rot1: 0
Rot2: 0
Rot3: 0
Wavelength: 0.96859e-10
`;

function setup(t: Test) {
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-integrate-o-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const poni = path.join(dir, 'golden.poni');
  writeFileSync(poni, PONI);
  return { dir, poni, args: ['--poni', poni, '--npt', '1000', '--unit', 'q_nm^-1', '--split', 'no', '--polarization', '0.99'] };
}

t.test('writes NAME.dat per input like pyFAI-integrate, equal to pyFAI', async (t) => {
  if (!needData(t) || !needReference(t, hasFabio, 'numpy')) return;
  const { dir, args } = setup(t);
  const bad = path.join(dir, 'broken.cbf');
  writeFileSync(bad, 'not a CBF');
  const out = path.join(dir, 'out');
  const r = spawnSync(process.execPath, [BIN, 'integrate', dataFile('cbf', 'thau_3_2_0001.cbf'), bad, ...args, '-o', out], { encoding: 'utf8' });
  t.equal(r.status, 1, 'one input failed: exit 1');
  t.equal(r.stdout, '', 'nothing on stdout: the profiles are in files');
  t.notMatch(r.stderr, /\r/, 'no progress bar when stderr is not a terminal');
  t.match(r.stderr, /broken\.cbf.*not a CBF/, 'the failure names the file');
  t.match(r.stderr, /1 \.dat file\(s\) written .*1 input\(s\) failed/);
  t.notOk(existsSync(path.join(out, 'broken.dat')), 'nothing written for the broken input');
  const file = path.join(out, 'thau_3_2_0001.dat');
  const text = readFileSync(file, 'utf8');
  // pyFAI's header lines, as DefaultAiWriter writes them.
  for (const line of [
    '# == pyFAI calibration ==',
    '# Distance Sample to Detector: 0.351 m',
    '# PONI: 2.248e-01, 2.170e-01 m',
    '# Rotations: 0.000000 0.000000 0.000000 rad',
    '# Distance Sample-beamCenter: 351.000 mm',
    '# Center: x=1261.610, y=1306.960 pix',
    '# Detector Pilatus6M\t PixelSize= 1.720e-04, 1.720e-04 m',
    '# Wavelength: 9.6859e-11 m',
    '# Dark current applied: False',
    '# Flat field applied: False',
    '# Polarization factor: 0.99',
    '# Solid angle correction: True',
    '# Unit: q_nm^-1',
    `# --> ${dataFile('cbf', 'thau_3_2_0001.cbf')}`,
  ])
    t.ok(text.split('\n').includes(line), `header: ${line}`);
  t.match(text, /^# Mask applied: .+$/m);
  t.match(text, /^# Integration method: split=no/m);
  const cols = runPython<number[][]>('import json, sys, numpy\nprint(json.dumps(numpy.loadtxt(json.load(sys.stdin)).T.tolist()))', file);
  t.equal(cols.length, 3, 'three columns: radial, I, sigma');
  const [q, I, sigma, , , , count] = readColumns(readData('golden', 'thau_3_2_0001_1d_no_csr_q_nm-1_1000_poisson.txt').toString('utf8'));
  const a = agreement([[cols[1]!, I!], [cols[2]!, sigma!]], (i) => count![i]! > 0);
  t.ok(a.fraction(1e-4) >= 0.999, `I and sigma equal pyFAI's within 1e-4 in ${a.within(1e-4)}/${a.bins} bins (worst ${a.worst.toExponential(2)})`);
  t.ok(agreement([[cols[0]!, q!]], () => true).worst < 1e-6, 'radial column equals pyFAI (to the 7 digits printed)');
});

t.test('two inputs with one name are refused before any work', async (t) => {
  if (!needData(t)) return;
  const { dir, args } = setup(t);
  mkdirSync(path.join(dir, 'a'));
  copyFileSync(dataFile('cbf', 'thau_3_2_0001.cbf'), path.join(dir, 'a', 'thau_3_2_0001.cbf'));
  const r = spawnSync(process.execPath, [BIN, 'integrate', dataFile('cbf', 'thau_3_2_0001.cbf'), path.join(dir, 'a', 'thau_3_2_0001.cbf'), ...args, '-o', path.join(dir, 'out')], { encoding: 'utf8' });
  t.equal(r.status, 2);
  t.match(r.stderr, /would both be written to .*thau_3_2_0001\.dat/);
  t.notOk(existsSync(path.join(dir, 'out')), 'no output directory made');
});

t.test('a progress bar on a terminal', async (t) => {
  if (!needData(t)) return;
  const script = spawnSync('script', ['--version'], { encoding: 'utf8' });
  if (!need(t, script.status === 0, 'script(1) not available to make a terminal (Debian util-linux/bsdutils)', 'Debian installs it')) return;
  const { dir, args } = setup(t);
  const inputs = ['example.cbf', 'thau_3_2_0001.cbf'].map((f) => dataFile('cbf', f));
  const cmd = [process.execPath, BIN, 'integrate', ...inputs, ...args, '-o', path.join(dir, 'out')].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8' });
  t.equal(r.status, 0, r.stdout);
  t.match(r.stdout, /\rintegrate \[#+-*\] 1\/2 \(50%\)/, 'the bar counts the inputs');
  t.match(r.stdout, /\rintegrate \[#{30}\] 2\/2 \(100%\)/, 'and reaches the end');
  t.match(r.stdout, /2 \.dat file\(s\) written/);
});
