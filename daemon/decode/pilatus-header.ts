// The PILATUS "# Key value" lines of _array_data.header_contents, as typed metadata.

export interface PilatusHeader {
  detector?: string;
  date?: string;
  pixelSize?: [number, number]; // m, [x (fast), y (slow)]
  sensor?: string;
  exposureTime?: number; // s
  exposurePeriod?: number; // s
  tau?: number; // s
  countCutoff?: number;
  threshold?: number; // eV
  wavelength?: number; // m
  detectorDistance?: number; // m
  beamXY?: [number, number]; // pixels, [x (fast), y (slow)]
  polarization?: number;
  flux?: number;
  startAngle?: number; // deg
  angleIncrement?: number; // deg
  transmission?: number;
  /** Every header line, unparsed, for provenance. */
  lines: string[];
}

const num = String.raw`([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)`;

// Units as decimal exponents: "0.96859" A becomes Number("0.96859e-10"), the
// double nearest the written value, rather than 0.96859 * 1e-10.
function scaled(value: string, unit: string, units: Record<string, number>): number {
  const exponent = units[unit.toLowerCase()] ?? 0;
  const [mantissa, exp = '0'] = value.toLowerCase().split('e');
  return Number(`${mantissa}e${Number(exp) + exponent}`);
}

const LENGTH: Record<string, number> = { m: 0, mm: -3, um: -6, nm: -9, a: -10 };
const TIME: Record<string, number> = { s: 0, ms: -3, us: -6, ns: -9 };

export function parsePilatusHeader(text: string): PilatusHeader {
  const lines = text
    .split(/\r?\n/)
    .filter((l) => l.startsWith('# '))
    .map((l) => l.slice(2).trim());
  const h: PilatusHeader = { lines };
  const first = (re: RegExp): RegExpExecArray | null => {
    for (const l of lines) {
      const m = re.exec(l);
      if (m) return m;
    }
    return null;
  };
  let m: RegExpExecArray | null;
  if ((m = first(/^Detector:\s*(.+)$/i))) h.detector = m[1]!.trim();
  if ((m = first(/^(\d{4}-\d\d-\d\dT[\d:.]+)/))) h.date = m[1];
  if ((m = first(new RegExp(`^Pixel_size\\s+${num}\\s*(\\w+)?\\s*x\\s*${num}\\s*(\\w+)?`, 'i'))))
    h.pixelSize = [scaled(m[1]!, m[2] ?? 'm', LENGTH), scaled(m[3]!, m[4] ?? 'm', LENGTH)];
  if ((m = first(/^Silicon sensor, thickness\s+(.+)$/i))) h.sensor = m[1];
  if ((m = first(new RegExp(`^Exposure_time\\s+${num}\\s*(\\w+)?`, 'i')))) h.exposureTime = scaled(m[1]!, m[2] ?? 's', TIME);
  if ((m = first(new RegExp(`^Exposure_period\\s+${num}\\s*(\\w+)?`, 'i')))) h.exposurePeriod = scaled(m[1]!, m[2] ?? 's', TIME);
  if ((m = first(new RegExp(`^Tau\\s*=\\s*${num}\\s*(\\w+)?`, 'i')))) h.tau = scaled(m[1]!, m[2] ?? 's', TIME);
  if ((m = first(new RegExp(`^Count_cutoff\\s+${num}`, 'i')))) h.countCutoff = Number(m[1]);
  if ((m = first(new RegExp(`^Threshold_setting:?\\s+${num}`, 'i')))) h.threshold = Number(m[1]);
  if ((m = first(new RegExp(`^Wavelength\\s+${num}\\s*(\\w+)?`, 'i')))) h.wavelength = scaled(m[1]!, m[2] ?? 'A', LENGTH);
  if ((m = first(new RegExp(`^Detector_distance\\s+${num}\\s*(\\w+)?`, 'i'))))
    h.detectorDistance = scaled(m[1]!, m[2] ?? 'm', LENGTH);
  if ((m = first(new RegExp(`^Beam_xy\\s*\\(\\s*${num}\\s*,\\s*${num}\\s*\\)`, 'i')))) h.beamXY = [Number(m[1]), Number(m[2])];
  if ((m = first(new RegExp(`^Polarization\\s+${num}`, 'i')))) h.polarization = Number(m[1]);
  if ((m = first(new RegExp(`^Flux\\s+${num}`, 'i')))) h.flux = Number(m[1]);
  if ((m = first(new RegExp(`^Start_angle\\s+${num}`, 'i')))) h.startAngle = Number(m[1]);
  if ((m = first(new RegExp(`^Angle_increment\\s+${num}`, 'i')))) h.angleIncrement = Number(m[1]);
  if ((m = first(new RegExp(`^Transmission\\s+${num}`, 'i')))) h.transmission = Number(m[1]);
  return h;
}
