// How the publisher reaches its broker: a URL with no credentials in it (it is
// logged), and the client options that carry them: the user name, password
// and TLS material for an external broker, or the embedded broker's per-run
// login for the daemon's own client.
import type { IClientOptions } from 'mqtt';
import type { LoadedConfig } from '../config/config';
import type { Logger } from '../system/logger';
import type { EmbeddedBroker } from './embedded-broker';

export interface BrokerConnection {
  url: string;
  connect: IClientOptions;
}

export function brokerConnection(loaded: LoadedConfig, broker: EmbeddedBroker | undefined, log?: Logger): BrokerConnection {
  if (broker) return { url: broker.url, connect: { clientId: broker.login.clientId, username: broker.login.username, password: broker.login.password } };
  const url = new URL(loaded.config.mqtt.url!);
  url.username = '';
  url.password = '';
  const { username, password, tls } = loaded.credentials;
  const connect: IClientOptions = {};
  if (username !== undefined) connect.username = username;
  if (password !== undefined) connect.password = password;
  if (tls) {
    if (tls.ca) connect.ca = tls.ca;
    if (tls.cert) connect.cert = tls.cert;
    if (tls.key) connect.key = tls.key;
    connect.rejectUnauthorized = tls.rejectUnauthorized;
    if (!tls.rejectUnauthorized) log?.warn("mqtt.tls.reject_unauthorized is false: the broker's certificate is not checked, so anyone on the path can pose as the broker");
  }
  return { url: url.toString(), connect };
}
