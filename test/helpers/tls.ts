// A throw-away certificate authority and a server certificate for 127.0.0.1
// and localhost, made with openssl in a test's temporary directory.
import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { need } from './need';

export function needOpenssl(t: Test): boolean {
  return need(t, spawnSync('openssl', ['version']).status === 0, 'openssl not installed: apt-get install openssl', '.ci/run installs it');
}

export interface TestPki {
  ca: string;
  cert: string;
  key: string;
  /** A second CA that signed nothing here: a client trusting only it must refuse the server. */
  otherCa: string;
}

export function makeTestPki(dir: string): TestPki {
  const f = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ca = (name: string) => {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', f(`${name}.key`), '-out', f(`${name}.pem`));
    return f(`${name}.pem`);
  };
  ca('beamedge-test-ca');
  ca('beamedge-other-ca');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr'));
  openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('beamedge-test-ca.pem'), '-CAkey', f('beamedge-test-ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('server.ext'), '-out', f('server.pem'));
  return { ca: f('beamedge-test-ca.pem'), cert: f('server.pem'), key: f('server.key'), otherCa: f('beamedge-other-ca.pem') };
}
