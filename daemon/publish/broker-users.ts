// The users who may read from the embedded broker, in Mosquitto's password
// file format, so that `mosquitto_passwd` makes and edits it and no clear
// password is ever stored:
//   user:$7$<iterations>$<salt>$<hash>   PBKDF2-HMAC-SHA512 (mosquitto 2)
//   user:$6$<salt>$<hash>                SHA-512(password + salt) (mosquitto 1.x)
// Salt and hash are base64.
import { createHash, pbkdf2, timingSafeEqual } from 'node:crypto';

type Hash = { kind: 'pbkdf2'; iterations: number; salt: Buffer; hash: Buffer } | { kind: 'sha512'; salt: Buffer; hash: Buffer };

export type UserTable = ReadonlyMap<string, Hash>;

const B64 = '([A-Za-z0-9+/]+={0,2})';
const PBKDF2 = new RegExp(`^\\$7\\$(\\d{1,7})\\$${B64}\\$${B64}$`);
const SHA512 = new RegExp(`^\\$6\\$${B64}\\$${B64}$`);

/** Parses the file's text; throws an Error listing every bad line (never echoing a line, which may be a clear password). */
export function parseUsersFile(text: string, file: string): UserTable {
  const users = new Map<string, Hash>();
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const colon = line.indexOf(':');
    const user = colon > 0 ? line.slice(0, colon) : '';
    const field = colon > 0 ? line.slice(colon + 1) : '';
    const p = PBKDF2.exec(field);
    const s = SHA512.exec(field);
    let hash: Hash | undefined;
    if (p && Number(p[1]) > 0) hash = { kind: 'pbkdf2', iterations: Number(p[1]), salt: Buffer.from(p[2]!, 'base64'), hash: Buffer.from(p[3]!, 'base64') };
    else if (s) hash = { kind: 'sha512', salt: Buffer.from(s[1]!, 'base64'), hash: Buffer.from(s[2]!, 'base64') };
    if (!user || !hash || hash.hash.length !== 64) problems.push(`line ${i + 1}: not "user:" followed by a $7$ or $6$ hash (make the file with mosquitto_passwd)`);
    else if (users.has(user)) problems.push(`line ${i + 1}: user ${JSON.stringify(user)} appears twice`);
    else users.set(user, hash);
  });
  if (!problems.length && users.size === 0) problems.push('has no users (make it with mosquitto_passwd -c FILE USER)');
  if (problems.length) throw new Error(`${file}: ${problems.join('; ')}`);
  return users;
}

/** Whether `password` is the user's. Constant-time compare; PBKDF2 runs off the event loop. */
export async function checkPassword(users: UserTable, user: string | undefined, password: Buffer | undefined): Promise<boolean> {
  const h = user === undefined ? undefined : users.get(user);
  if (!h || !password) return false;
  const got =
    h.kind === 'pbkdf2'
      ? await new Promise<Buffer>((resolve, reject) => pbkdf2(password, h.salt, h.iterations, h.hash.length, 'sha512', (e, k) => (e ? reject(e) : resolve(k))))
      : createHash('sha512').update(password).update(h.salt).digest();
  return got.length === h.hash.length && timingSafeEqual(got, h.hash);
}
