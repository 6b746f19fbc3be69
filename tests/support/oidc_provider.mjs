// A real OpenID provider for the OAuth tests: node-oidc-provider (OpenID Certified), configured from a JSON file
// named by argv[2]:
//   {"port": 0, "resource": "http://127.0.0.1:P/mcp", "other_resource": "http://127.0.0.1:1/elsewhere",
//    "scopes": ["proxmox:read", ...], "alg": "ES256",
//    "clients": [{"client_id": "...", "client_secret": "...", "scope": "proxmox:read ...", "ttl": 600}]}
// Every client may use the client-credentials grant only. Access tokens are JWTs (RFC 9068) for the two
// resource indicators above; any other resource is refused (invalid_target). Signing keys are made at each start,
// so a restart on the same port is a key rotation. Prints one JSON line {"issuer": ..., "port": ...} when ready.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider, { errors } from 'oidc-provider';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));

function signingKey(alg) {
  const kid = crypto.randomBytes(8).toString('hex');
  if (alg.startsWith('ES')) {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
  }
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

const server = http.createServer();
server.listen(config.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const ttlOf = Object.fromEntries(config.clients.map((c) => [c.client_id, c.ttl || 600]));
  const provider = new Provider(issuer, {
    clients: config.clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      grant_types: ['client_credentials'],
      redirect_uris: [],
      response_types: [],
      scope: c.scope,
      id_token_signed_response_alg: config.alg || 'ES256',
    })),
    jwks: { keys: [signingKey(config.alg || 'ES256')] },
    scopes: config.scopes,
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.resource,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== config.resource && resourceIndicator !== config.other_resource) {
            throw new errors.InvalidTarget();
          }
          return {
            scope: config.scopes.join(' '),
            audience: resourceIndicator,
            accessTokenTTL: ttlOf[client.clientId] || 600,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: config.alg || 'ES256' } },
          };
        },
      },
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => { server.close(() => process.exit(0)); server.closeAllConnections(); });
}
