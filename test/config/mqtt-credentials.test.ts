// The MQTT security keys at the boundary: files read once and named when
// they cannot be, keys that contradict each other refused, nothing secret in
// a problem message or in the Config that gets printed.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadConfig, parseConfig } from '../../daemon/config/config';
import { BIN } from '../helpers/daemon-process';

const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-mqttcfg-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => (writeFileSync(path.join(dir, name), text), path.join(dir, name));
const SECRET = 'zz-s3cret-zz';
file('pw', `${SECRET}\n`);
file('ca.pem', '-----BEGIN CERTIFICATE-----\n');

function problems(mqtt: string): string[] {
  try {
    parseConfig(`mqtt: ${mqtt}\n`, 'c.yaml', dir);
    return [];
  } catch (e) {
    return (e as { problems?: string[] }).problems ?? [(e as Error).message];
  }
}

t.test('the password file is read at load, relative to the config, final newline stripped', async (t) => {
  const l = parseConfig('mqtt: { url: "mqtts://b:8883", username: beam, password_file: pw, tls: { ca: ca.pem } }\n', 'c.yaml', dir);
  t.equal(l.credentials.password, SECRET);
  t.equal(l.credentials.username, 'beam');
  t.equal(l.config.mqtt.password_file, path.join(dir, 'pw'), 'path resolved against the config directory');
  t.same(l.credentials.tls?.ca?.toString(), '-----BEGIN CERTIFICATE-----\n');
  t.equal(l.credentials.tls?.rejectUnauthorized, true);
  t.notMatch(JSON.stringify(l.config), SECRET, 'the Config holds the path, never the password');
  file('pw-crlf', `${SECRET}\r\n`);
  t.equal(parseConfig('mqtt: { url: "mqtt://b", username: u, password_file: pw-crlf }\n', 'c.yaml', dir).credentials.password, SECRET, 'CRLF too');
  const fromUrl = parseConfig('mqtt: { url: "mqtt://be%40m:p%3Ass@b:1883" }\n', 'c.yaml', dir);
  t.same([fromUrl.credentials.username, fromUrl.credentials.password], ['be@m', 'p:ss'], 'credentials in the URL are %-decoded');
});

t.test('unreadable and malformed files fail, naming the key and the file', async (t) => {
  t.match(problems('{ url: "mqtt://b", username: u, password_file: missing.pw }'), [new RegExp(`mqtt\\.password_file: cannot read ${path.join(dir, 'missing.pw')}`)]);
  file('empty', '\n');
  t.match(problems('{ url: "mqtt://b", username: u, password_file: empty }'), [/mqtt\.password_file: .*empty is empty/]);
  file('two', 'a\nb\n');
  t.match(problems('{ url: "mqtt://b", username: u, password_file: two }'), [/must hold the password on one line/]);
  t.match(problems('{ url: "mqtts://b", tls: { ca: nope.pem } }'), [/mqtt\.tls\.ca: cannot read .*nope\.pem/]);
  file('users', 'alice:clearpassword\n');
  t.match(problems('{ embedded_users_file: users }'), [/mqtt\.embedded_users_file: .*users: line 1: not "user:"/]);
  t.notMatch(problems('{ embedded_users_file: users }').join(), 'clearpassword', 'a bad line is not echoed');
  if (process.getuid?.() !== 0) {
    const locked = file('locked', 'x');
    chmodSync(locked, 0);
    t.match(problems('{ url: "mqtt://b", username: u, password_file: locked }'), [/cannot read .*locked: EACCES/]);
  }
});

t.test('keys that contradict each other are refused', async (t) => {
  const cases: [string, RegExp][] = [
    ['{ username: u }', /mqtt\.username: set, but applies to an external broker and mqtt\.url is null/],
    ['{ password_file: pw }', /mqtt\.password_file: set, but applies to an external broker/],
    ['{ tls: { ca: ca.pem } }', /mqtt\.tls: set, but applies to an external broker/],
    ['{ url: "mqtt://b", tls: { ca: ca.pem } }', /mqtt\.tls: set, but mqtt\.url uses mqtt: without TLS/],
    ['{ url: "mqtts://b", tls: { cert: ca.pem } }', /cert and key go together \(cert is set alone\)/],
    ['{ url: "mqtt://u:p@b", password_file: pw }', /mqtt\.password_file: set, and mqtt\.url has a password too/],
    ['{ url: "mqtt://u@b", username: v }', /mqtt\.username: set, and mqtt\.url has a user name too/],
    ['{ url: "mqtt://b", password_file: pw }', /there is no user name/],
    ['{ url: "mqtt://b", embedded_users_file: users }', /embedded_users_file: set, but applies to the embedded broker and mqtt\.url is set/],
    ['{ url: "http://b" }', /protocol http: must be one of/],
  ];
  for (const [mqtt, re] of cases) t.match(problems(mqtt), [re], mqtt);
});

t.test('a problem with a URL never quotes its password', async (t) => {
  for (const url of [`"mqtt://u:${SECRET}@"`, `"not a url u:${SECRET}@x"`, `["mqtt://u:${SECRET}@b"]`, `"ftp://u:${SECRET}@b"`]) {
    const p = problems(`{ url: ${url} }`);
    t.ok(p.length, `refused: ${p.join('; ')}`);
    t.notMatch(p.join(), SECRET, url.replace(SECRET, '…'));
  }
});

t.test('check-config names an unreadable password file and exits 1', async (t) => {
  const cfg = file('bad.yaml', 'mqtt: { url: "mqtt://b:1883", username: u, password_file: /nonexistent/beamedge.pw }\n');
  const r = spawnSync(process.execPath, [BIN, 'check-config', cfg], { encoding: 'utf8' });
  t.equal(r.status, 1);
  t.match(r.stderr, /mqtt\.password_file: cannot read \/nonexistent\/beamedge\.pw/);
  const keys = spawnSync(process.execPath, [BIN, 'check-config', '--keys'], { encoding: 'utf8' }).stdout;
  for (const k of ['mqtt.username (default null) [restart]', 'mqtt.password_file (default null) [restart]', 'mqtt.tls.ca (default null) [restart]', 'mqtt.tls.reject_unauthorized (default true) [restart]', 'mqtt.embedded_users_file (default null) [restart]'])
    t.match(keys, k, k);
  t.ok(loadConfig(file('ok.yaml', 'mqtt: { url: "mqtt://b:1883", username: u, password_file: pw }\n')).credentials.password === SECRET, 'loadConfig resolves against the file');
});
