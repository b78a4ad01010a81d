// The configuration schema: every key, its rule, its default, and whether a
// change needs a restart. Validation happens once, at the boundary; the rest
// of the daemon works with the typed, defaulted result.
import { redactValue } from '../system/redact';
import { STAGE_NAMES } from '../workers/stages/names';

export type Node =
  | { kind: 'string'; default?: string | null; nullable?: boolean; restart?: boolean; pattern?: RegExp; rule?: string; doc: string }
  | { kind: 'number' | 'integer'; default?: number | null; nullable?: boolean; restart?: boolean; min?: number; max?: number; doc: string }
  | { kind: 'boolean'; default?: boolean; restart?: boolean; doc: string }
  | { kind: 'enum'; values: readonly string[]; default?: string; restart?: boolean; doc: string }
  | { kind: 'range'; default?: null; restart?: boolean; doc: string }
  | { kind: 'pairs'; default: readonly (readonly [number, number])[]; restart?: boolean; doc: string }
  | { kind: 'set'; values: readonly string[]; default: readonly string[]; restart?: boolean; doc: string }
  | { kind: 'object'; fields: Record<string, Node>; restart?: boolean; doc?: string }
  | { kind: 'list'; item: Node & { kind: 'object' }; restart?: boolean; doc: string };

const UNITS = ['q_nm^-1', 'q_A^-1', '2th_deg', '2th_rad', 'r_mm', 'r_m'] as const;

const veto: Node = {
  kind: 'object',
  doc: 'hit-finding veto: keep a frame when enough pixels are lit (lit_pixels) or enough spots were found (spots)',
  fields: {
    enabled: { kind: 'boolean', default: true, doc: 'apply the veto (false keeps every frame)' },
    method: { kind: 'enum', values: ['lit_pixels', 'spots'], default: 'lit_pixels', doc: 'lit_pixels: count pixels above threshold; spots: count the spots pipeline.spots finds' },
    min_spots: { kind: 'integer', default: 10, min: 0, doc: 'method spots: keep a frame with at least this many spots' },
    max_spots: { kind: 'integer', nullable: true, default: null, min: 0, doc: 'method spots: and at most this many (null: no limit; ice rings and powder give thousands)' },
    threshold: { kind: 'number', default: 20, doc: 'ADU a pixel must exceed (after dark subtraction) to be lit' },
    min_pixels: { kind: 'integer', default: 30, min: 0, doc: 'lit pixels needed to keep a frame' },
    keep_one_in: { kind: 'integer', default: 0, min: 0, doc: 'also keep 1 in K rejected frames for auditing (0: none)' },
  },
};

const integrate: Node = {
  kind: 'object',
  doc: 'azimuthal integration (pyFAI semantics)',
  fields: {
    npt: { kind: 'integer', default: 1000, min: 1, max: 100000, doc: 'radial bins' },
    npt_azim: { kind: 'integer', default: 0, min: 0, max: 3600, doc: 'azimuthal bins for 2D integration (0: 1D only)' },
    unit: { kind: 'enum', values: UNITS, default: 'q_nm^-1', doc: 'radial unit' },
    split: { kind: 'enum', values: ['no', 'bbox'], default: 'no', doc: 'pixel splitting' },
    polarization: { kind: 'number', nullable: true, default: null, min: -1, max: 1, doc: 'polarization factor (null: no correction)' },
    solid_angle: { kind: 'boolean', default: true, doc: 'solid-angle correction' },
    range: { kind: 'range', default: null, doc: '[lo, hi] radial range in the unit (null: all pixels)' },
  },
};

const spots: Node = {
  kind: 'object',
  doc: 'spot finding on the calibrated frame (the veto can count the spots)',
  fields: {
    algorithm: { kind: 'enum', values: ['none', 'dispersion', 'dispersion_extended', 'peakfinder8'], default: 'none', doc: "none, DIALS's dispersion or dispersion_extended, or OM/CrystFEL's peakfinder8" },
    kernel_size: { kind: 'integer', default: 3, min: 1, max: 50, doc: 'dispersion: half-size of the local window in pixels (DIALS kernel_size)' },
    sigma_background: { kind: 'number', default: 6, min: 0, doc: 'dispersion: index-of-dispersion threshold (DIALS sigma_background)' },
    sigma_strong: { kind: 'number', default: 3, min: 0, doc: 'dispersion: strong-pixel threshold in sigmas (DIALS sigma_strong)' },
    global_threshold: { kind: 'number', default: 0, doc: 'dispersion: pixels at or below this are never strong (DIALS global_threshold)' },
    min_local: { kind: 'integer', default: 2, min: 0, doc: 'dispersion: valid pixels the local window needs (DIALS min_local)' },
    gain: { kind: 'number', default: 1, min: 0.000001, doc: 'dispersion: detector gain (DIALS gain)' },
    min_spot_size: { kind: 'integer', default: 3, min: 1, doc: "dispersion: smallest spot, pixels (4-connected; dials.find_spots' Auto for pixel-array detectors)" },
    max_spot_size: { kind: 'integer', default: 1000, min: 1, doc: 'dispersion: largest spot, pixels' },
    max_separation: { kind: 'number', nullable: true, default: 2, min: 0, doc: 'dispersion: largest distance between a spot\'s peak and its centroid, pixels (dials.find_spots; null: no filter)' },
    adc_threshold: { kind: 'number', default: 800, doc: "peakfinder8: minimum pixel value (CrystFEL's --threshold)" },
    min_snr: { kind: 'number', default: 5, min: 0, doc: 'peakfinder8: minimum signal-to-noise ratio of a peak' },
    min_pix: { kind: 'integer', default: 2, min: 1, doc: 'peakfinder8: smallest peak, pixels (8-connected)' },
    max_pix: { kind: 'integer', default: 200, min: 1, doc: 'peakfinder8: largest peak, pixels' },
    local_bg_radius: { kind: 'integer', default: 3, min: 1, max: 50, doc: 'peakfinder8: radius of the local background ring, pixels' },
    min_res: { kind: 'number', default: 0, min: 0, doc: 'peakfinder8: smallest radius from the beam centre, pixels' },
    max_res: { kind: 'number', default: 1200, min: 0, doc: 'peakfinder8: largest radius from the beam centre, pixels' },
    max_published: { kind: 'integer', default: 1000, min: 0, doc: 'spots sent in each reduced message (the true count is sent too)' },
  },
};

const correlate: Node = {
  kind: 'object',
  doc: 'fluctuation X-ray scattering: angular cross-correlations C2(q, q\', delta) of the frames the veto keeps, accumulated per series',
  fields: {
    enabled: { kind: 'boolean', default: false, doc: 'accumulate C2 per series (publish it on correlation, write it to output.directory at the series end)' },
    npt: { kind: 'integer', default: 64, min: 1, max: 1000, doc: 'radial bins of the polar image' },
    npt_azim: { kind: 'integer', default: 180, min: 1, max: 3600, doc: 'azimuthal bins over 360 degrees (delta steps of 360/npt_azim degrees)' },
    unit: { kind: 'enum', values: UNITS, default: 'q_nm^-1', doc: 'radial unit of the polar image' },
    range: { kind: 'range', default: null, doc: '[lo, hi] radial range in the unit (null: all pixels)' },
    q_pairs: { kind: 'pairs', default: [], doc: 'radial bin pairs [i, j] published besides the autocorrelation C2(i, i), e.g. [[3, 7], [3, 12]]' },
    publish_every: { kind: 'integer', default: 100, min: 1, doc: 'publish the accumulated correlation after this many more accumulated frames of a series (and at its end)' },
    max_mb: { kind: 'number', default: 1024, min: 1, doc: 'memory one series accumulator may take in each worker, MiB (about npt^2 x (npt_azim/2+1) x 16 bytes); a larger npt is refused' },
  },
};

/** The same keys with no defaults: a series override sets only what it names. */
function withoutDefaults(node: Node): Node {
  if (node.kind !== 'object') return node;
  return { ...node, fields: Object.fromEntries(Object.entries(node.fields).map(([k, v]) => [k, { ...v, default: undefined } as Node])) };
}

export const SCHEMA: Node = {
  kind: 'object',
  fields: {
    instance: { kind: 'string', default: 'beamedge', restart: true, pattern: /^[A-Za-z0-9_.-]+$/, rule: 'letters, digits, _ . - only (it is an MQTT topic level)', doc: 'instance name, used in MQTT topics and provenance' },
    log: { kind: 'object', fields: { level: { kind: 'enum', values: ['debug', 'info', 'warn', 'error'], default: 'info', doc: 'log level' } } },
    ingest: {
      kind: 'object',
      fields: {
        tcp: {
          kind: 'object',
          restart: true,
          fields: {
            enabled: { kind: 'boolean', default: true, doc: 'listen for framed frames over TCP' },
            host: { kind: 'string', default: '127.0.0.1', doc: 'listen address' },
            port: { kind: 'integer', default: 9400, min: 0, max: 65535, doc: 'listen port (0: any free port)' },
            policy: { kind: 'enum', values: ['backpressure', 'drop'], default: 'backpressure', doc: 'when the workers fall behind: stop reading, or drop frames' },
            max_connections: { kind: 'integer', default: 64, min: 1, max: 10000, doc: 'connections accepted at once; more are refused with an event' },
            idle_timeout_ms: { kind: 'integer', default: 60000, min: 100, doc: 'a connection that sends nothing for this long is closed (a frame it was sending is rejected)' },
            frame_timeout_ms: { kind: 'integer', default: 10000, min: 100, doc: 'a frame must arrive whole within this once its first byte is in (not counting waits for a free slot)' },
            ack: { kind: 'enum', values: ['slot', 'durable'], default: 'slot', doc: 'for senders that ask (header "ack": true): acknowledge a frame once it is in a slot, or once it is processed and its provenance row committed' },
          },
        },
        dectris: {
          kind: 'object',
          restart: true,
          fields: {
            enabled: { kind: 'boolean', default: false, doc: 'connect to a DECTRIS detector control unit (ZeroMQ PULL)' },
            endpoint: { kind: 'string', default: 'tcp://127.0.0.1:31001', doc: 'the DCU stream endpoint, e.g. tcp://dcu:31001' },
            protocol: { kind: 'enum', values: ['v2', 'v1'], default: 'v2', doc: 'stream protocol: v2 (CBOR, port 31001) or v1 (JSON multipart, port 9999)' },
            channel: { kind: 'string', nullable: true, default: null, doc: 'image channel to process (null: the first, e.g. threshold_1)' },
          },
        },
        watch: {
          kind: 'object',
          restart: true,
          fields: {
            enabled: { kind: 'boolean', default: false, doc: 'process CBF files (and EIGER/NXmx HDF5 files, with a pattern that matches them) written into a directory' },
            directory: { kind: 'string', nullable: true, default: null, doc: 'directory to watch' },
            pattern: { kind: 'string', default: '*.cbf', doc: 'file name glob' },
            poll_ms: { kind: 'integer', default: 200, min: 10, doc: 'how often the directory is scanned' },
            incomplete_timeout_ms: { kind: 'integer', default: 10000, min: 100, doc: 'a file still incomplete after this is processed (and rejected) so later files are not held up' },
            series: { kind: 'string', default: 'files', doc: 'series id given to watched files' },
            follow_symlinks: { kind: 'boolean', default: false, doc: 'take symlinks to regular files outside the directory too (false: only targets inside it)' },
            reprocess: { kind: 'boolean', default: false, doc: 'at start, process again the files an earlier run already processed (false: skip those with the same name, size and mtime)' },
          },
        },
      },
    },
    rings: {
      kind: 'object',
      restart: true,
      fields: {
        slots: { kind: 'integer', default: 16, min: 2, max: 4096, doc: 'frame slots (memory = slots x slot_mb)' },
        slot_mb: { kind: 'number', default: 32, min: 0.0625, max: 1024, doc: 'largest frame payload, MiB' },
        result_mb: { kind: 'number', default: 16, min: 1, max: 1024, doc: 'result ring per worker, MiB' },
      },
    },
    workers: {
      kind: 'object',
      restart: true,
      fields: {
        threads: { kind: 'integer', default: 0, min: 0, max: 256, doc: 'worker threads (0: cores - 1, at least 1)' },
        stall_timeout_ms: { kind: 'integer', default: 120000, min: 100, doc: 'slots in use and no frame finished for this long: the systemd watchdog is no longer fed, so systemd restarts the daemon' },
      },
    },
    maps: {
      kind: 'object',
      restart: true,
      doc: 'geometry map store: pixel-to-bin maps built once on the main thread, shared read-only by every worker',
      fields: {
        max_count: { kind: 'integer', default: 8, min: 1, max: 256, doc: 'maps kept in memory (least recently used evicted beyond)' },
        max_mb: { kind: 'number', default: 1024, min: 1, doc: 'memory of the kept maps, MiB (the map in use is kept even when larger)' },
        build_threads: { kind: 'integer', default: 0, min: 0, max: 64, doc: 'threads one map build uses (0: the cores)' },
        disk_cache: { kind: 'boolean', default: true, doc: 'keep built maps on disk, so a restarted daemon or a new beamedge integrate run does not build them again' },
        directory: { kind: 'string', nullable: true, default: null, doc: 'on-disk cache directory (null: maps-<instance> beside the provenance database)' },
        disk_mb: { kind: 'number', default: 4096, min: 1, doc: 'size of the on-disk cache, MiB (oldest files removed beyond)' },
      },
    },
    pipeline: {
      kind: 'object',
      doc: 'processing stages, reloadable',
      fields: {
        geometry: {
          kind: 'object',
          fields: {
            poni: { kind: 'string', nullable: true, default: null, doc: 'pyFAI PONI file; null: geometry from each frame header' },
          },
        },
        stages: { kind: 'set', values: STAGE_NAMES, default: STAGE_NAMES, doc: `stages that run after decoding, from ${STAGE_NAMES.join(', ')} (always in that order)` },
        calibration: {
          kind: 'object',
          doc: 'detector calibration set (JUNGFRAU pedestals, gains and pixel mask)',
          fields: {
            set: { kind: 'string', nullable: true, default: null, doc: 'calibration set directory (calibration.json + .npy arrays); null: none' },
            energy_kev: { kind: 'number', nullable: true, default: null, min: 0.1, max: 1000, doc: "photon energy for the photon conversion (null: the set's energy_kev)" },
            unit: { kind: 'enum', values: ['photons', 'keV'], default: 'photons', doc: 'what converted JUNGFRAU pixels count' },
            tracking: { kind: 'boolean', default: true, doc: 'JUNGFRAU: track the G0 pedestal during data (dark pixels move it by a moving average)' },
            tracking_window: { kind: 'integer', default: 128, min: 1, max: 1000000, doc: "frames in the tracking moving average (Jungfraujoch's PEDESTAL_WINDOW_SIZE)" },
            tracking_k: { kind: 'number', default: 1, min: 0, max: 100, doc: 'a G0 pixel updates its pedestal only while |ADC - pedestal| < k x rms' },
            snapshot_s: { kind: 'number', default: 300, min: 1, doc: 'the tracked pedestal becomes a new derived calibration set this often (the frames after it are converted with that set)' },
          },
        },
        mask: { kind: 'string', nullable: true, default: null, doc: 'mask image (CBF or .npy, non-zero = masked)' },
        dark: { kind: 'string', nullable: true, default: null, doc: 'dark image subtracted before veto and integration' },
        flat: { kind: 'string', nullable: true, default: null, doc: 'flat-field image the normalisation is multiplied by (CBF or .npy)' },
        spots,
        veto,
        integrate,
        correlate,
      },
    },
    series: {
      kind: 'list',
      doc: 'per-series overrides of pipeline.spots, pipeline.veto and pipeline.integrate, first match wins',
      item: {
        kind: 'object',
        fields: {
          match: { kind: 'string', doc: 'series id glob (* and ?)' },
          spots: withoutDefaults(spots),
          veto: withoutDefaults(veto),
          integrate: withoutDefaults(integrate),
        },
      },
    },
    mqtt: {
      kind: 'object',
      fields: {
        url: { kind: 'string', nullable: true, default: null, restart: true, doc: 'broker URL (mqtt://host:1883); null: start an embedded broker' },
        username: { kind: 'string', nullable: true, default: null, restart: true, doc: 'user name at the external broker (null: none, or the one in mqtt.url)' },
        password_file: { kind: 'string', nullable: true, default: null, restart: true, doc: 'file holding the password for mqtt.username, one line (relative to the config file); never logged or stored' },
        tls: {
          kind: 'object',
          restart: true,
          doc: 'TLS to the external broker (mqtts:// or wss://)',
          fields: {
            ca: { kind: 'string', nullable: true, default: null, doc: "PEM CA certificate(s) that sign the broker's certificate (null: the system's CAs)" },
            cert: { kind: 'string', nullable: true, default: null, doc: 'PEM client certificate, for brokers that authenticate clients by certificate (with key)' },
            key: { kind: 'string', nullable: true, default: null, doc: 'PEM private key of cert' },
            reject_unauthorized: { kind: 'boolean', default: true, doc: "refuse a broker whose certificate does not verify (false: tests only, anyone can impersonate the broker)" },
          },
        },
        embedded_host: { kind: 'string', default: '127.0.0.1', restart: true, doc: 'embedded broker address' },
        embedded_port: { kind: 'integer', default: 1883, min: 0, max: 65535, restart: true, doc: 'embedded broker port' },
        embedded_users_file: { kind: 'string', nullable: true, default: null, restart: true, doc: 'users who may subscribe to the embedded broker, a mosquitto_passwd file (null: anyone who reaches it may subscribe)' },
        format: { kind: 'enum', values: ['cbor', 'json'], default: 'cbor', doc: 'payload encoding of reduced frames' },
        queue_limit: { kind: 'integer', default: 1000, min: 1, doc: 'messages waiting in memory for a slow broker; beyond, they go to the spool (without one: the oldest are dropped and counted)' },
        spool: {
          kind: 'object',
          restart: true,
          doc: 'on-disk store-and-forward for QoS 1 messages the broker has not acknowledged',
          fields: {
            enabled: { kind: 'boolean', default: true, doc: 'spool unacknowledged messages to disk and send them, in order, after reconnecting or restarting' },
            directory: { kind: 'string', nullable: true, default: null, doc: 'spool directory (relative to the config file); null: spool-<instance> beside the provenance database' },
            max_mb: { kind: 'number', default: 1024, min: 0.0625, max: 1048576, doc: 'disk the spool may use, MiB; when full, the oldest messages are dropped and counted per topic' },
          },
        },
      },
    },
    provenance: {
      kind: 'object',
      fields: {
        path: { kind: 'string', default: 'beamedge.sqlite', restart: true, doc: 'SQLite database (relative to the config file)' },
        retention_days: { kind: 'number', default: 30, min: 0, doc: 'frame and event rows older than this are deleted (0: keep all)' },
        batch_ms: { kind: 'integer', default: 200, min: 10, max: 10000, doc: 'how often queued rows are written in one transaction' },
      },
    },
    output: {
      kind: 'object',
      restart: true,
      doc: 'reduced data on disk',
      fields: {
        directory: { kind: 'string', nullable: true, default: null, doc: 'where reduced data and correlation files go (relative to the config file); null: output-<instance> beside the provenance database' },
        formats: { kind: 'set', values: ['nexus', 'dat'], default: ['nexus'], doc: 'nexus: one NeXus/HDF5 file per series (NXazint1d/2d: every kept profile with errors, frame ids, times, decisions, spots, configuration); dat: one pyFAI-style .dat per kept frame; []: none' },
        flush_ms: { kind: 'integer', default: 500, min: 10, max: 60000, doc: 'buffered frames are written and the files flushed at least this often (a kill loses at most this much)' },
      },
    },
    stats: { kind: 'object', fields: { interval_ms: { kind: 'integer', default: 1000, min: 100, doc: 'stats publication period' } } },
    http: {
      kind: 'object',
      restart: true,
      doc: 'the live page, the HTTP API and Prometheus metrics',
      fields: {
        enabled: { kind: 'boolean', default: true, doc: 'serve the live page (/), /metrics, /health, /ready and /api/* over HTTP' },
        host: { kind: 'string', default: '127.0.0.1', doc: 'listen address (0.0.0.0: every interface; the page and API have no authentication)' },
        port: { kind: 'integer', default: 8080, min: 0, max: 65535, doc: 'listen port (0: any free port)' },
      },
    },
  },
};

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(problems.join('; '));
  }
}

function show(v: unknown): string {
  // A rejected value is logged and stored as an event: no password in it.
  const s = JSON.stringify(redactValue(v));
  return s === undefined ? String(v) : s.length > 60 ? s.slice(0, 57) + '...' : s;
}

/** Returns the value with defaults filled in; throws ConfigError naming key, value and rule. */
export function validate(value: unknown, node: Node = SCHEMA, path = ''): unknown {
  const problems: string[] = [];
  const out = check(value, node, path, problems);
  if (problems.length) throw new ConfigError(problems);
  return out;
}

function check(v: unknown, node: Node, path: string, problems: string[]): unknown {
  const where = path || '(top level)';
  const bad = (rule: string) => {
    problems.push(`${where}: ${show(v)} ${rule}`);
    return undefined;
  };
  if (v === undefined && node.kind === 'list') return [];
  if (v === undefined && node.kind !== 'object') return 'default' in node ? node.default : undefined;
  switch (node.kind) {
    case 'object': {
      if (v === undefined || v === null) v = {};
      if (typeof v !== 'object' || Array.isArray(v)) return bad('must be a mapping of keys');
      const obj = v as Record<string, unknown>;
      for (const k of Object.keys(obj)) if (!(k in node.fields)) problems.push(`${path ? path + '.' : ''}${k}: unknown key (known: ${Object.keys(node.fields).join(', ')})`);
      const out: Record<string, unknown> = {};
      for (const [k, child] of Object.entries(node.fields)) {
        const r = check(obj[k], child, path ? `${path}.${k}` : k, problems);
        if (r !== undefined) out[k] = r;
      }
      return out;
    }
    case 'list':
      if (v === null) return [];
      if (!Array.isArray(v)) return bad('must be a list');
      return v.map((item, i) => check(item, node.item, `${path}[${i}]`, problems));
    case 'string':
      if (v === null && node.nullable) return null;
      if (typeof v !== 'string' || v === '') return bad(`must be a non-empty string${node.nullable ? ' or null' : ''}`);
      if (node.pattern && !node.pattern.test(v)) return bad(`must match ${node.rule ?? node.pattern}`);
      return v;
    case 'number':
    case 'integer':
      if (v === null && node.nullable) return null;
      if (typeof v !== 'number' || !Number.isFinite(v)) return bad(`must be a number${node.nullable ? ' or null' : ''}`);
      if (node.kind === 'integer' && !Number.isInteger(v)) return bad('must be an integer');
      if (node.min !== undefined && v < node.min) return bad(`must be >= ${node.min}`);
      if (node.max !== undefined && v > node.max) return bad(`must be <= ${node.max}`);
      return v;
    case 'boolean':
      if (typeof v !== 'boolean') return bad('must be true or false');
      return v;
    case 'enum':
      if (typeof v !== 'string' || !node.values.includes(v)) return bad(`must be one of ${node.values.join(', ')}`);
      return v;
    case 'set': {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string' && node.values.includes(x))) return bad(`must be a list of ${node.values.join(', ')}`);
      const named = v as string[];
      if (new Set(named).size !== named.length) return bad('names a value twice');
      // One order whatever the file says: the data path's.
      return node.values.filter((x) => named.includes(x));
    }
    case 'pairs':
      if (v === null) return [];
      if (!Array.isArray(v) || !v.every((p) => Array.isArray(p) && p.length === 2 && p.every((x) => Number.isInteger(x) && (x as number) >= 0)))
        return bad('must be a list of [i, j] pairs of bin indices (integers >= 0)');
      return v;
    case 'range':
      if (v === null) return null;
      if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x)) || !(v[1] > v[0]))
        return bad('must be [lo, hi] with hi > lo, or null');
      return v;
  }
}

/** Dotted paths of restart-only keys whose value differs between two validated configs. */
export function restartOnlyChanges(a: unknown, b: unknown, node: Node = SCHEMA, path = '', restart = false): string[] {
  const r = restart || !!node.restart;
  if (node.kind === 'object') {
    const ao = (a ?? {}) as Record<string, unknown>;
    const bo = (b ?? {}) as Record<string, unknown>;
    return Object.entries(node.fields).flatMap(([k, child]) => restartOnlyChanges(ao[k], bo[k], child, path ? `${path}.${k}` : k, r));
  }
  return r && JSON.stringify(a) !== JSON.stringify(b) ? [path] : [];
}

/** Every key with its default and rule, for the README and `beamedge check-config --keys`. */
export function describe(node: Node = SCHEMA, path = '', restart = false): string[] {
  const r = restart || !!node.restart;
  if (node.kind === 'object') return Object.entries(node.fields).flatMap(([k, child]) => describe(child, path ? `${path}.${k}` : k, r));
  if (node.kind === 'list') return [`${path}: ${node.doc}`, ...describe(node.item, `${path}[]`, r)];
  const def = 'default' in node && node.default !== undefined ? ` (default ${JSON.stringify(node.default)})` : '';
  return [`${path}${def}${r ? ' [restart]' : ''}: ${node.doc}`];
}
