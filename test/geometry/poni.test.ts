import t from 'tap';
import { parsePilatusHeader } from '../../daemon/decode/pilatus-header';
import { geometryFromCbfHeader, GeometryError } from '../../daemon/geometry/geometry';
import { formatPoni, parsePoni } from '../../daemon/geometry/poni';
import { hasPyFAI, runPython } from '../helpers/python';

// Written by pyFAI 0.21 (poni_version 2) and by older pyFAI (key/value with PixelSize).
const PONI_V2 = `# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
# Calibration done at Tue Nov 24 04:00:00 2026
poni_version: 2
Detector: Pilatus6M
Detector_config: {"pixel1": 0.000172, "pixel2": 0.000172, "max_shape": [2527, 2463]}
Distance: 0.351
Poni1: 0.22479712
Poni2: 0.21699692
Rot1: 0.01
Rot2: -0.02
Rot3: 0.0
Wavelength: 9.6859e-11
`;

const PONI_V1 = `# Nota: C-Order, 1 refers to the Y axis, 2 to the X axis
PixelSize1: 7.5e-05
PixelSize2: 7.5e-05
Distance: 0.1
Poni1: 0.04
Poni2: 0.05
Rot1: 0
Rot2: 0
Rot3: 0
Wavelength: 1e-10
`;

t.test('poni_version 2 with Detector_config', async (t) => {
  const g = parsePoni(PONI_V2);
  t.same(g, { dist: 0.351, poni1: 0.22479712, poni2: 0.21699692, rot1: 0.01, rot2: -0.02, rot3: 0, pixel1: 0.000172, pixel2: 0.000172, wavelength: 9.6859e-11, shape: [2527, 2463], detector: 'Pilatus6M' });
});

t.test('old key/value form', async (t) => {
  const g = parsePoni(PONI_V1);
  t.equal(g.pixel1, 7.5e-5);
  t.equal(g.poni2, 0.05);
  t.equal(g.wavelength, 1e-10);
});

t.test('a known detector name supplies the pixel size', async (t) => {
  const g = parsePoni('Detector: Pilatus2M\nDistance: 0.2\nPoni1: 0.1\nPoni2: 0.1\n');
  t.equal(g.pixel1, 172e-6);
  t.same(g.shape, [1679, 1475]);
});

t.test('bad PONI files name the problem', async (t) => {
  t.throws(() => parsePoni('PixelSize1: 1e-4\nPixelSize2: 1e-4\nPoni1: 0\nPoni2: 0\n', 'x.poni'), /x.poni: missing Distance/);
  t.throws(() => parsePoni('Distance: 0.1\nPoni1: 0\nPoni2: 0\n'), /no pixel size/);
  t.throws(() => parsePoni('PixelSize1: 1e-4\nPixelSize2: 1e-4\nDistance: abc\nPoni1: 0\nPoni2: 0\n'), /Distance is 'abc', not a number/);
  t.throws(() => parsePoni('Detector_config: {bad\nDistance: 0.1\nPoni1: 0\nPoni2: 0\n'), /not valid JSON/);
  t.throws(() => parsePoni('Detector_config: {"pixel1": 1e-4, "pixel2": 1e-4, "orientation": 2}\nDistance: 0.1\nPoni1: 0\nPoni2: 0\n'), /orientation 2/);
  t.throws(() => parsePoni('PixelSize1: 1e-4\nPixelSize2: 1e-4\nDistance: -1\nPoni1: 0\nPoni2: 0\n'), GeometryError);
});

t.test('formatPoni round-trips, and pyFAI reads what we write', async (t) => {
  const g = parsePoni(PONI_V2);
  t.same(parsePoni(formatPoni(g)), g);
  if (!hasPyFAI) {
    t.comment('pyFAI not installed: the pyFAI read-back is skipped');
    return;
  }
  const ref = runPython<number[]>(
    `import sys, json, tempfile, pyFAI
text = json.load(sys.stdin)
with tempfile.NamedTemporaryFile('w', suffix='.poni', delete=False) as f: f.write(text)
ai = pyFAI.load(f.name)
print(json.dumps([ai.dist, ai.poni1, ai.poni2, ai.rot1, ai.rot2, ai.rot3, ai.pixel1, ai.pixel2, ai.wavelength]))`,
    formatPoni(g),
  );
  t.same(ref, [g.dist, g.poni1, g.poni2, g.rot1, g.rot2, g.rot3, g.pixel1, g.pixel2, g.wavelength]);
});

t.test('geometry from a PILATUS header', async (t) => {
  const h = parsePilatusHeader('# Pixel_size 172e-6 m x 172e-6 m\r\n# Wavelength 0.96859 A\r\n# Detector_distance 0.35100 m\r\n# Beam_xy (1261.61, 1306.96) pixels\r\n');
  const g = geometryFromCbfHeader(h);
  t.equal(g.poni1, 1306.96 * 172e-6);
  t.equal(g.poni2, 1261.61 * 172e-6);
  t.equal(g.dist, 0.351);
  t.equal(g.wavelength, 0.96859e-10);
  t.throws(() => geometryFromCbfHeader(parsePilatusHeader('# Wavelength 1 A\n'), 'f.cbf'), /f.cbf lacks Pixel_size, Detector_distance, Beam_xy/);
});
