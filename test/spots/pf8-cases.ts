// The two peakfinder8 reference cases of shared/data/spots (README "spots/"):
// frame, mask, radius map and parameters as OM was run, and OM's peak lists.
import { readCbf } from '../../daemon/decode/cbf';
import { radiusMap, type Peakfinder8Params } from '../../daemon/spots/peakfinder8';
import { readData } from '../helpers/data';

export interface Pf8Case {
  name: string;
  width: number;
  height: number;
  frame: Float32Array | Int32Array;
  mask: Uint8Array | null;
  radius: Float32Array;
  params: Peakfinder8Params;
  om: OmPeak[];
}

export interface OmPeak {
  fs: number;
  ss: number;
  intensity: number;
  maxIntensity: number;
  sigma: number;
  snr: number;
  pixels: number;
}

const COMMON = { minSnr: 5, minPixCount: 2, maxPixCount: 200, localBgRadius: 3, minRes: 0, maxRes: 10000, maxNumPeaks: 2048 };

export function readOmPeaks(file: string): OmPeak[] {
  return readData('spots', file)
    .toString('utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [fs, ss, intensity, maxIntensity, sigma, snr, pixels] = l.split('\t').map(Number) as number[];
      return { fs: fs!, ss: ss!, intensity: intensity!, maxIntensity: maxIntensity!, sigma: sigma!, snr: snr!, pixels: pixels! };
    });
}

/** lyso_noise.img: SMV, 512-byte header, uint16 LE 512 x 512; centre (256.5, 256.5) pixel-index. */
export function lysoCase(): Pf8Case {
  const b = readData('spots', 'lyso_noise.img');
  const width = 512;
  const height = 512;
  const frame = new Float32Array(width * height);
  for (let i = 0; i < frame.length; i++) frame[i] = b.readUInt16LE(512 + 2 * i);
  return {
    name: 'lyso_noise',
    width,
    height,
    frame,
    mask: null,
    radius: radiusMap(width, height, { fs: 256.5, ss: 256.5 }),
    params: { adcThresh: 10, ...COMMON },
    om: readOmPeaks('lyso_pf8_om.tsv'),
  };
}

/** thau_3_2_0001.cbf: PILATUS3 6M, pixels < 0 masked, centre (1261.61, 1306.96) from Beam_xy. */
export function thauCase(): Pf8Case {
  const f = readCbf(readData('cbf', 'thau_3_2_0001.cbf'));
  const [height, width] = f.shape;
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = f.pixels[i]! < 0 ? 1 : 0;
  return {
    name: 'thau_3_2_0001',
    width,
    height,
    frame: f.pixels,
    mask,
    radius: radiusMap(width, height, { fs: 1261.61, ss: 1306.96 }),
    params: { adcThresh: 50, ...COMMON },
    om: readOmPeaks('thau_3_2_0001_pf8_om.tsv'),
  };
}
