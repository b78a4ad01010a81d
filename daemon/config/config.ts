// The validated configuration, and loading it from YAML.
import { outputDirectory } from '../output/directory';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { redactConfigText } from '../system/redact';
import { loadMqttCredentials, type MqttCredentials } from './mqtt-credentials';
import { ConfigError, restartOnlyChanges, validate } from './schema';
import type { StageName } from '../workers/stages/names';
import { correlatorBytes } from '../correlate/accumulator';
import { loadPipelineCalibration, type PipelineCalibration } from '../calibrate/pipeline-calibration';

export type Unit = 'q_nm^-1' | 'q_A^-1' | '2th_deg' | '2th_rad' | 'r_mm' | 'r_m';

export interface VetoConfig {
  enabled: boolean;
  method: 'lit_pixels' | 'spots';
  min_spots: number;
  max_spots: number | null;
  threshold: number;
  min_pixels: number;
  keep_one_in: number;
}

export interface SpotsConfig {
  algorithm: 'none' | 'dispersion' | 'dispersion_extended' | 'peakfinder8';
  kernel_size: number;
  sigma_background: number;
  sigma_strong: number;
  global_threshold: number;
  min_local: number;
  gain: number;
  min_spot_size: number;
  max_spot_size: number;
  max_separation: number | null;
  adc_threshold: number;
  min_snr: number;
  min_pix: number;
  max_pix: number;
  local_bg_radius: number;
  min_res: number;
  max_res: number;
  max_published: number;
}

export interface IntegrateConfig {
  npt: number;
  npt_azim: number;
  unit: Unit;
  split: 'no' | 'bbox';
  polarization: number | null;
  solid_angle: boolean;
  range: [number, number] | null;
}

export interface CorrelateConfig {
  enabled: boolean;
  npt: number;
  npt_azim: number;
  unit: Unit;
  range: [number, number] | null;
  q_pairs: [number, number][];
  publish_every: number;
  max_mb: number;
}

export interface CalibrationConfig {
  set: string | null;
  energy_kev: number | null;
  unit: 'photons' | 'keV';
  tracking: boolean;
  tracking_window: number;
  tracking_k: number;
  snapshot_s: number;
}

export interface PipelineConfig {
  geometry: { poni: string | null };
  stages: StageName[];
  calibration: CalibrationConfig;
  mask: string | null;
  dark: string | null;
  flat: string | null;
  spots: SpotsConfig;
  veto: VetoConfig;
  integrate: IntegrateConfig;
  correlate: CorrelateConfig;
}

export interface SeriesOverride {
  match: string;
  spots?: Partial<SpotsConfig>;
  veto?: Partial<VetoConfig>;
  integrate?: Partial<IntegrateConfig>;
}

export interface Config {
  instance: string;
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
  ingest: {
    tcp: { enabled: boolean; host: string; port: number; policy: 'backpressure' | 'drop'; max_connections: number; idle_timeout_ms: number; frame_timeout_ms: number; ack: 'slot' | 'durable' };
    dectris: { enabled: boolean; endpoint: string; protocol: 'v2' | 'v1'; channel: string | null };
    watch: { enabled: boolean; directory: string | null; pattern: string; poll_ms: number; incomplete_timeout_ms: number; series: string; follow_symlinks: boolean; reprocess: boolean };
  };
  rings: { slots: number; slot_mb: number; result_mb: number };
  workers: { threads: number; stall_timeout_ms: number };
  /** directory: resolved, never null after loading. */
  maps: { max_count: number; max_mb: number; build_threads: number; disk_cache: boolean; directory: string | null; disk_mb: number };
  pipeline: PipelineConfig;
  series: SeriesOverride[];
  mqtt: {
    url: string | null;
    username: string | null;
    password_file: string | null;
    tls: { ca: string | null; cert: string | null; key: string | null; reject_unauthorized: boolean };
    embedded_host: string;
    embedded_port: number;
    embedded_users_file: string | null;
    format: 'cbor' | 'json';
    queue_limit: number;
    /** directory: resolved, never null after loading. */
    spool: { enabled: boolean; directory: string | null; max_mb: number };
  };
  provenance: { path: string; retention_days: number; batch_ms: number };
  /** directory: resolved, never null after loading (default: see output/directory.ts). */
  output: { directory: string | null; formats: ('nexus' | 'dat')[]; flush_ms: number };
  stats: { interval_ms: number };
  http: { enabled: boolean; host: string; port: number };
}

export interface LoadedConfig {
  config: Config;
  /** The file's text with credentials redacted: what provenance stores. */
  text: string;
  /** Of `text`, so that a stored text checks against its hash. */
  sha256: string;
  /** What mqtt.password_file and the TLS and users files hold; never printed or stored. */
  credentials: MqttCredentials;
  /** File it came from, or a label such as "embedded defaults". */
  source: string;
  /** The pipeline's PONI, mask, dark, flat and calibration set, loaded and checked. */
  calibration: PipelineCalibration;
}

/** Paths in the config are relative to the config file's directory. */
function resolvePaths(c: Config, baseDir: string): Config {
  const abs = (p: string | null) => (p === null ? null : path.resolve(baseDir, p));
  const provenance = abs(c.provenance.path)!;
  return {
    ...c,
    ingest: { ...c.ingest, watch: { ...c.ingest.watch, directory: abs(c.ingest.watch.directory) } },
    pipeline: {
      ...c.pipeline,
      geometry: { poni: abs(c.pipeline.geometry.poni) },
      calibration: { ...c.pipeline.calibration, set: abs(c.pipeline.calibration.set) },
      mask: abs(c.pipeline.mask),
      dark: abs(c.pipeline.dark),
      flat: abs(c.pipeline.flat),
    },
    provenance: { ...c.provenance, path: provenance },
    output: { ...c.output, directory: outputDirectory({ output: { directory: abs(c.output.directory) }, provenance: { path: provenance }, instance: c.instance }) },
    maps: { ...c.maps, directory: abs(c.maps.directory) ?? path.join(path.dirname(provenance), `maps-${c.instance}`) },
    mqtt: {
      ...c.mqtt,
      password_file: abs(c.mqtt.password_file),
      tls: { ...c.mqtt.tls, ca: abs(c.mqtt.tls.ca), cert: abs(c.mqtt.tls.cert), key: abs(c.mqtt.tls.key) },
      embedded_users_file: abs(c.mqtt.embedded_users_file),
      // Beside the provenance database by default: both are the daemon's state, in one place (StateDirectory under systemd).
      spool: { ...c.mqtt.spool, directory: abs(c.mqtt.spool.directory) ?? path.join(path.dirname(provenance), `spool-${c.instance}`) },
    },
  };
}

export function parseConfig(text: string, source: string, baseDir = process.cwd()): LoadedConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    const err = e as YAMLParseError;
    throw new ConfigError([`${source}: not valid YAML: ${err.message.split('\n')[0]}`]);
  }
  let config: Config;
  try {
    config = validate(raw) as Config;
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.problems.map((p) => `${source}: ${p}`));
    throw e;
  }
  const c = resolvePaths(config, baseDir);
  if (c.ingest.watch.enabled && !c.ingest.watch.directory) throw new ConfigError([`${source}: ingest.watch.directory: null must be set when ingest.watch.enabled is true`]);
  if (!c.ingest.tcp.enabled && !c.ingest.watch.enabled && !c.ingest.dectris.enabled)
    throw new ConfigError([`${source}: ingest: tcp, watch and dectris are all disabled, so no frame can arrive`]);
  const cc = c.pipeline.correlate;
  const bad = cc.q_pairs.filter(([i, j]) => i >= cc.npt || j >= cc.npt);
  if (bad.length) throw new ConfigError([`${source}: pipeline.correlate.q_pairs: ${JSON.stringify(bad)} name bins outside [0, npt = ${cc.npt})`]);
  const mb = correlatorBytes(cc.npt, cc.npt_azim) / 2 ** 20;
  if (cc.enabled && mb > cc.max_mb) throw new ConfigError([`${source}: pipeline.correlate: npt ${cc.npt} x npt_azim ${cc.npt_azim} needs ${mb.toFixed(0)} MiB per series accumulator, over max_mb ${cc.max_mb}`]);
  const { credentials, problems } = loadMqttCredentials(c.mqtt);
  if (problems.length) throw new ConfigError(problems.map((p) => `${source}: ${p}`));
  let calibration: PipelineCalibration;
  try {
    calibration = loadPipelineCalibration(c.pipeline);
  } catch (e) {
    throw new ConfigError([`${source}: ${(e as Error).message}`]);
  }
  const stored = redactConfigText(text);
  return { config: c, text: stored, sha256: createHash('sha256').update(stored).digest('hex'), credentials, source, calibration };
}

export function loadConfig(file: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`${file}: cannot read: ${(e as Error).message}`]);
  }
  return parseConfig(text, file, path.dirname(path.resolve(file)));
}

/** Throws when a reload changes keys that only take effect at start. */
export function checkReloadable(running: Config, next: Config): void {
  const changed = restartOnlyChanges(running, next);
  if (changed.length) throw new ConfigError(changed.map((k) => `${k}: changed, but takes effect only at restart (restart the service to apply it)`));
}

export { ConfigError };
