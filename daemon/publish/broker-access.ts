// Who may do what on the embedded broker. It exists to carry this daemon's
// results, so it is read-only for everybody else:
// - the daemon's own client proves itself with a random secret made for this
//   run (it never leaves the process) and is the only one that publishes, only
//   under beamedge/<instance>/; that covers retained messages and last wills,
//   which aedes authorises as publishes when they fire;
// - nobody else may connect with a client id of the daemon's form, which
//   would take over its session and fire its last will ("offline");
// - with a users file, only those users connect; without one, anyone who
//   reaches the listening address may. Whoever is connected may subscribe.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { AuthenticateError, Client, PublishPacket } from 'aedes' with { 'resolution-mode': 'import' };
import { checkPassword, type UserTable } from './broker-users';

// aedes's AuthErrorCode is a const enum, which isolated compilation cannot inline.
const IDENTIFIER_REJECTED = 2;
const BAD_USERNAME_OR_PASSWORD = 4;
const NOT_AUTHORIZED = 5;

export interface DaemonLogin {
  clientId: string;
  username: string;
  password: string;
}

function refused(message: string, returnCode: number): AuthenticateError {
  return Object.assign(new Error(message), { returnCode }) as AuthenticateError;
}

export class BrokerAccess {
  /** What the daemon's client must present, and nobody else has. */
  readonly login: DaemonLogin;
  private readonly prefix: string;
  private readonly reservedIds: string;
  private readonly secret: Buffer;
  private readonly daemonClients = new WeakSet<Client>();

  constructor(
    instance: string,
    private readonly users?: UserTable,
  ) {
    this.prefix = `beamedge/${instance}/`;
    this.reservedIds = `beamedge-${instance}-`;
    this.login = { clientId: `${this.reservedIds}${process.pid}`, username: `beamedge-${instance}`, password: randomBytes(32).toString('base64url') };
    this.secret = Buffer.from(this.login.password);
  }

  private isDaemon(clientId: string, username: string | undefined, password: Buffer | undefined): boolean {
    const secretOk = !!password && password.length === this.secret.length && timingSafeEqual(password, this.secret);
    return secretOk && clientId === this.login.clientId && username === this.login.username;
  }

  readonly authenticate = (client: Client, username: string | undefined, password: Buffer | undefined, done: (e: AuthenticateError | null, ok: boolean | null) => void): void => {
    if (this.isDaemon(client.id, username, password)) {
      this.daemonClients.add(client);
      return done(null, true);
    }
    // Refused here, before aedes registers the client, so the daemon's session is never touched.
    if (client.id.startsWith(this.reservedIds)) return done(refused(`client ids ${this.reservedIds}* belong to the beamedge daemon`, IDENTIFIER_REJECTED), false);
    if (!this.users) return done(null, true);
    if (username === undefined) return done(refused('this broker needs a user name and password', NOT_AUTHORIZED), false);
    checkPassword(this.users, username, password).then(
      (ok) => done(ok ? null : refused('bad user name or password', BAD_USERNAME_OR_PASSWORD), ok),
      () => done(refused('bad user name or password', BAD_USERNAME_OR_PASSWORD), false),
    );
  };

  readonly authorizePublish = (client: Client | null, packet: PublishPacket, done: (e?: Error | null) => void): void => {
    if (client && this.daemonClients.has(client) && packet.topic.startsWith(this.prefix)) return done(null);
    // MQTT 3.1.1 has no refusal code for a publish: aedes closes the connection.
    done(new Error(`publishing on ${packet.topic} is not allowed: this broker carries ${this.prefix} for the daemon only`));
  };
}
