// Credentials never leave the process readable: not in logs, events,
// provenance, or a printed configuration. One module decides what a secret
// looks like so that every output applies the same rule.
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

export const MASK = '***';

// Keys whose value is a secret. `password_file` is a path, not a secret.
const SECRET_KEY = /(^|_)(password|passwd|secret|token)$/i;

// scheme://user:password@ — the password runs to the last @ before the host,
// as URL parsers read it, so an unencoded @ inside it is still covered.
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/?#@:]*:)[^\s/?#]*@/gi;

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key);
}

/** Every URL password in `s` replaced by ***, e.g. `mqtt://user:***@host:1883`; the user name stays, to say who connects. */
export function redactUrls(s: string): string {
  return s.replace(URL_PASSWORD, `$1${MASK}@`);
}

/**
 * One value (a setting, a log field). Beyond redactUrls, a value that is a
 * whole URL is read as a URL parser reads it, so a password with spaces or
 * tabs in it, which the parser accepts, is masked too.
 */
export function redactString(s: string): string {
  const r = redactUrls(s);
  if (!/^\s*[a-z][a-z0-9+.-]*:\/\//i.test(r)) return r;
  try {
    const u = new URL(r.trim());
    if (u.password && u.password !== MASK) {
      u.password = MASK;
      return u.toString();
    }
  } catch {
    // Not a URL after all: the text rule has done what can be done.
  }
  return r;
}

/** A deep copy with secret keys masked and URL passwords redacted: for printing a configuration. */
export function redactValue<T>(value: T): T {
  return walk(value, '') as T;
}

function walk(v: unknown, key: string): unknown {
  if (v !== null && v !== undefined && isSecretKey(key)) return MASK;
  if (typeof v === 'string') return redactString(v);
  if (Array.isArray(v)) return v.map((x) => walk(x, ''));
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, walk(x, k)]));
  return v;
}

/** For JSON.stringify: the same rule while a log line is serialised. */
export function redactReplacer(key: string, value: unknown): unknown {
  if (value !== null && value !== undefined && key && isSecretKey(key)) return MASK;
  return typeof value === 'string' ? redactString(value) : value;
}

function leaks(v: unknown, key = ''): boolean {
  if (v !== null && v !== undefined && isSecretKey(key) && v !== MASK) return true;
  if (typeof v === 'string') return redactString(v) !== v;
  if (Array.isArray(v)) return v.some((x) => leaks(x));
  if (v && typeof v === 'object') return Object.entries(v as Record<string, unknown>).some(([k, x]) => leaks(x, k));
  return false;
}

/**
 * The configuration file's text as provenance stores it. The line-level
 * rewrite keeps the file as written (comments, layout); YAML can still hide a
 * password from it (escapes such as \x40, a URL folded over lines), so the
 * result is parsed and checked, and a text that still carries a secret is
 * replaced by the redacted settings re-serialised: comments are lost, the
 * settings are not.
 */
export function redactConfigText(text: string): string {
  const redacted = text
    .split('\n')
    .map((line) => redactUrls(line).replace(/^(\s*(?:-\s+)?["']?([A-Za-z0-9_]+)["']?\s*:\s+)\S.*$/, (all, head: string, key: string) => (isSecretKey(key) ? head + JSON.stringify(MASK) : all)))
    .join('\n');
  let clean = false;
  try {
    clean = !leaks(parseYaml(redacted));
  } catch {
    // The rewrite broke the YAML (a secret in a block scalar): use the fallback.
  }
  if (clean) return redacted;
  return `# secrets redacted; comments and layout of the original file dropped\n${stringifyYaml(redactValue(parseYaml(text)))}`;
}
