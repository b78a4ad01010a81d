// The redaction rule: URL passwords and secret keys, however YAML spells them.
import { parse as parseYaml } from 'yaml';
import t from 'tap';
import { createLogger } from '../../daemon/system/logger';
import { MASK, redactConfigText, redactUrls, redactValue } from '../../daemon/system/redact';

const SECRET = 'Tr0ub4dor&3';

t.test('URL passwords are masked, the rest of the URL is kept', async (t) => {
  t.equal(redactUrls(`mqtt://beam:${SECRET}@broker:1883`), 'mqtt://beam:***@broker:1883');
  t.equal(redactUrls(`mqtts://beam:${encodeURIComponent(SECRET)}@broker:8883/x?y=1`), 'mqtts://beam:***@broker:8883/x?y=1');
  t.equal(redactUrls('mqtt://beam:p@ss@broker'), 'mqtt://beam:***@broker', 'an unencoded @ in the password is covered to the last @');
  t.equal(redactUrls('ws://u:@h/mqtt'), 'ws://u:***@h/mqtt', 'an empty password still shows as masked');
  t.equal(redactUrls('connect to mqtt://a:x@h1 and wss://b:y@h2 failed'), 'connect to mqtt://a:***@h1 and wss://b:***@h2 failed', 'several URLs in one message');
  for (const clean of ['mqtt://broker:1883', 'mqtt://user@broker', 'tcp://dcu:31001', 'http://h/p?a=b:c@d', 'mqtt://h:1883/x@y', 'no url here: a@b'])
    t.equal(redactUrls(clean), clean, `unchanged: ${clean}`);
});

t.test('a printed configuration has no secret in it', async (t) => {
  const config = { mqtt: { url: `mqtt://u:${SECRET}@h`, password_file: '/etc/pw', password: SECRET, nested: [{ token: SECRET }] }, n: 3 };
  const out = redactValue(config);
  t.notMatch(JSON.stringify(out), SECRET);
  t.same(out, { mqtt: { url: 'mqtt://u:***@h', password_file: '/etc/pw', password: MASK, nested: [{ token: MASK }] }, n: 3 });
  t.equal(config.mqtt.password, SECRET, 'the input is not modified');
});

t.test('the stored configuration text keeps the file as written, minus the secrets', async (t) => {
  const text = `# beamline 7\ninstance: b7   # the name\nmqtt:\n  url: "mqtt://beam:${SECRET}@broker:1883"  # site broker\n  format: json\n`;
  const out = redactConfigText(text);
  t.equal(out, text.replace(SECRET, MASK), 'only the password changed; comments and layout kept');
});

t.test('secrets YAML hides from a line-by-line rewrite are caught', async (t) => {
  const hostile: [string, string][] = [
    ['a \\x40 escape instead of @', `mqtt:\n  url: "mqtt://beam:${SECRET}\\x40broker:1883"\n`],
    ['a URL folded over two lines', `mqtt:\n  url: "mqtt://beam:${SECRET}\n    @broker:1883"\n`],
    ['a single-quoted URL with a quote in the password', `mqtt:\n  url: 'mqtt://beam:it''s${SECRET}@broker'\n`],
    ['a password key in flow style', `mqtt: { password: ${SECRET}, url: null }\n`],
    ['a password key with a block scalar', `mqtt:\n  password: |\n    ${SECRET}\n  format: json\n`],
    ['an anchor and alias', `a: &pw "mqtt://u:${SECRET}@h"\nb: *pw\n`],
  ];
  for (const [what, text] of hostile) {
    const out = redactConfigText(text);
    t.notMatch(out, SECRET.slice(0, 6), `${what}: secret absent`);
    t.same(parseYaml(out), redactValue(parseYaml(text)), `${what}: the settings survive`);
  }
});

t.test('log lines pass the rule whatever the caller put in them', async (t) => {
  const lines: string[] = [];
  const log = createLogger('debug', (l) => lines.push(l));
  log.info(`connecting to mqtt://u:${SECRET}@h`, { url: `mqtts://u:${SECRET}@h:8883`, password: SECRET, nested: { error: `bad mqtt://x:${SECRET}@y`, secret: 987654321 } });
  t.equal(lines.length, 1);
  t.notMatch(lines[0]!, SECRET);
  t.notMatch(lines[0]!, '987654321', 'a secret key is masked whatever its type');
  const parsed = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.same(parsed.url, 'mqtts://u:***@h:8883');
  t.same(parsed.password, MASK);
});
