// The MQTT keys that only make sense together, and the files they name
// (password, TLS material, embedded broker users). The files are read here,
// once per load, so check-config fails naming a missing or unreadable file and
// nothing later touches them. What is read is kept apart from the Config,
// which gets printed and stored.
import { readFileSync } from 'node:fs';
import { parseUsersFile, type UserTable } from '../publish/broker-users';
import type { Config } from './config';

export interface MqttCredentials {
  /** The user name for an external broker: mqtt.username, or the one in mqtt.url. */
  username?: string;
  password?: string;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean };
  /** Who may read from the embedded broker; absent: anyone who reaches it. */
  embeddedUsers?: UserTable;
}

const PROTOCOLS = ['mqtt:', 'mqtts:', 'tcp:', 'ssl:', 'tls:', 'ws:', 'wss:'];
const SECURE = ['mqtts:', 'ssl:', 'tls:', 'wss:'];

// A malformed %-escape is kept as written rather than failing the load.
function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function read(key: string, file: string, problems: string[]): Buffer | undefined {
  try {
    return readFileSync(file);
  } catch (e) {
    problems.push(`${key}: cannot read ${file}: ${(e as Error).message}`);
    return undefined;
  }
}

/** Checks the MQTT keys against each other and reads the files they name; returns problems instead of throwing. */
export function loadMqttCredentials(m: Config['mqtt']): { credentials: MqttCredentials; problems: string[] } {
  const problems: string[] = [];
  const credentials: MqttCredentials = {};
  const tls = m.tls;
  const tlsSet = tls.ca !== null || tls.cert !== null || tls.key !== null || !tls.reject_unauthorized;
  if (m.url === null) {
    const external = [m.username !== null && 'mqtt.username', m.password_file !== null && 'mqtt.password_file', tlsSet && 'mqtt.tls'].filter(Boolean);
    for (const k of external) problems.push(`${k}: set, but applies to an external broker and mqtt.url is null (the embedded broker's own client needs no credentials)`);
  } else {
    let url: URL | undefined;
    try {
      url = new URL(m.url);
    } catch {
      // Not quoted: unparsed, there is no telling which part is a password.
      problems.push('mqtt.url: is not a URL (e.g. mqtts://broker.example:8883)');
    }
    if (url && !PROTOCOLS.includes(url.protocol)) problems.push(`mqtt.url: protocol ${url.protocol} must be one of ${PROTOCOLS.join(' ')}`);
    if (url && tlsSet && !SECURE.includes(url.protocol)) problems.push(`mqtt.tls: set, but mqtt.url uses ${url.protocol} without TLS (use mqtts:// or wss://)`);
    if (url?.username && m.username !== null) problems.push('mqtt.username: set, and mqtt.url has a user name too: give it one way');
    if (url?.password && m.password_file !== null) problems.push('mqtt.password_file: set, and mqtt.url has a password too: give it one way (the file is the safer)');
    if (m.embedded_users_file !== null) problems.push('mqtt.embedded_users_file: set, but applies to the embedded broker and mqtt.url is set');
    const username = m.username ?? (url?.username ? decode(url.username) : undefined);
    if (m.password_file !== null && username === undefined) problems.push('mqtt.password_file: set, but there is no user name (mqtt.username)');
    if (username !== undefined) credentials.username = username;
    if (url?.password) credentials.password = decode(url.password);
  }
  if (m.password_file !== null) {
    const text = read('mqtt.password_file', m.password_file, problems)?.toString('utf8');
    // Editors and `echo` add a final newline that is not part of the password.
    const password = text?.replace(/\r?\n$/, '');
    if (password === '') problems.push(`mqtt.password_file: ${m.password_file} is empty`);
    else if (password !== undefined && /[\r\n]/.test(password)) problems.push(`mqtt.password_file: ${m.password_file} must hold the password on one line`);
    else if (password !== undefined) credentials.password = password;
  }
  if ((tls.cert === null) !== (tls.key === null)) problems.push(`mqtt.tls: cert and key go together (${tls.cert === null ? 'key' : 'cert'} is set alone)`);
  if (tlsSet) {
    credentials.tls = { rejectUnauthorized: tls.reject_unauthorized };
    for (const k of ['ca', 'cert', 'key'] as const) {
      const file = tls[k];
      const pem = file === null ? undefined : read(`mqtt.tls.${k}`, file, problems);
      if (pem) credentials.tls[k] = pem;
    }
  }
  if (m.embedded_users_file !== null) {
    const text = read('mqtt.embedded_users_file', m.embedded_users_file, problems)?.toString('utf8');
    try {
      if (text !== undefined) credentials.embeddedUsers = parseUsersFile(text, m.embedded_users_file);
    } catch (e) {
      problems.push(`mqtt.embedded_users_file: ${(e as Error).message}`);
    }
  }
  return { credentials, problems };
}
