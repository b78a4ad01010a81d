// The embedded broker's users file: Mosquitto's hashed format, checked
// against files made by mosquitto_passwd itself when it is installed.
import { spawnSync } from 'node:child_process';
import { createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { checkPassword, parseUsersFile } from '../../daemon/publish/broker-users';
import { MOSQUITTO_PASSWD, needMosquitto } from '../helpers/mosquitto';

function pbkdf2Line(user: string, password: string, iterations = 101): string {
  const salt = randomBytes(12);
  return `${user}:$7$${iterations}$${salt.toString('base64')}$${pbkdf2Sync(password, salt, iterations, 64, 'sha512').toString('base64')}`;
}

function sha512Line(user: string, password: string): string {
  const salt = randomBytes(12);
  return `${user}:$6$${salt.toString('base64')}$${createHash('sha512').update(password).update(salt).digest('base64')}`;
}

t.test('both hash forms verify the right password only', async (t) => {
  const users = parseUsersFile(`# dashboards\n${pbkdf2Line('alice', 'wonder land')}\n\n${sha512Line('bob', 'hunter2')}\r\n`, 'users');
  t.equal(users.size, 2);
  t.equal(await checkPassword(users, 'alice', Buffer.from('wonder land')), true);
  t.equal(await checkPassword(users, 'bob', Buffer.from('hunter2')), true);
  t.equal(await checkPassword(users, 'alice', Buffer.from('wonder lanD')), false, 'wrong password');
  t.equal(await checkPassword(users, 'alice', Buffer.from('hunter2')), false, "another user's password");
  t.equal(await checkPassword(users, 'carol', Buffer.from('hunter2')), false, 'unknown user');
  t.equal(await checkPassword(users, 'alice', undefined), false, 'no password');
  t.equal(await checkPassword(users, undefined, Buffer.from('wonder land')), false, 'no user');
  t.equal(await checkPassword(users, 'alice', Buffer.alloc(0)), false, 'empty password');
});

t.test('clear passwords and malformed lines are refused without echoing them', async (t) => {
  const bad: [string, RegExp][] = [
    ['alice:wonderland\n', /line 1: not "user:" followed by a \$7\$ or \$6\$ hash/],
    [`${pbkdf2Line('a', 'x')}\nbob\n`, /line 2: not/],
    [`${pbkdf2Line('a', 'x')}\n${pbkdf2Line('a', 'y')}\n`, /line 2: user "a" appears twice/],
    ['carol:$7$101$c2FsdA==$c2hvcnQ=\n', /line 1: not/],
    ['dave:$7$0$c2FsdA==$' + Buffer.alloc(64).toString('base64') + '\n', /line 1: not/],
    [':$6$c2FsdA==$' + Buffer.alloc(64).toString('base64') + '\n', /line 1: not/],
    ['# only a comment\n\n', /has no users/],
  ];
  for (const [text, re] of bad) {
    t.throws(() => parseUsersFile(text, '/etc/beamedge/users'), re, JSON.stringify(text.slice(0, 30)));
    try {
      parseUsersFile(text, '/etc/beamedge/users');
    } catch (e) {
      t.match((e as Error).message, /^\/etc\/beamedge\/users: /, 'names the file');
      t.notMatch((e as Error).message, 'wonderland', 'never echoes a line');
    }
  }
});

t.test('files made by mosquitto_passwd verify', async (t) => {
  if (!needMosquitto(t)) return;
  t.ok(existsSync(MOSQUITTO_PASSWD), 'mosquitto_passwd comes with mosquitto');
  const dir = mkdtempSync(path.join(tmpdir(), 'beamedge-users-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'users');
  const run = (...args: string[]) => t.equal(spawnSync(MOSQUITTO_PASSWD, args, { stdio: 'inherit' }).status, 0, `mosquitto_passwd ${args.slice(0, -1).join(' ')}`);
  run('-c', '-b', file, 'alice', 'pa:ss word');
  run('-H', 'sha512', '-b', file, 'bob', 'hunter2');
  const users = parseUsersFile(readFileSync(file, 'utf8'), file);
  t.equal(await checkPassword(users, 'alice', Buffer.from('pa:ss word')), true, '$7$ (PBKDF2-SHA512) from mosquitto_passwd');
  t.equal(await checkPassword(users, 'bob', Buffer.from('hunter2')), true, '$6$ (SHA-512) from mosquitto_passwd -H sha512');
  t.equal(await checkPassword(users, 'alice', Buffer.from('pa:ss wor')), false);
});
