// A real OpenID Connect server for dexcred's interop tests: the
// `oidc-provider` package (pinned in package-lock.json), configured with
// three clients, client credentials, token revocation, introspection and
// refresh-token rotation, plus a resource-owner password grant registered
// with `provider.registerGrantType` that issues tokens through
// oidc-provider's own models (Grant, AccessToken, RefreshToken, IdToken).
//
// Usage: node tests/oidc/server.mjs [--access-ttl SECS] [--cc-ttl SECS]
//
// Listens on http://127.0.0.1:<random port> (dexcred accepts plain http only
// for loopback), prints one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","username":…,"password":…,"clients":{…}}
// and exits when stdin closes (the test process died or dropped us).
// `GET /_test/counts` returns counters of what the server did, by kind.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider, { errors } from 'oidc-provider';

const { InvalidGrant, InvalidRequest } = errors;

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  if (i === -1) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isInteger(value) || value <= 0) {
    process.stderr.write(`server.mjs: ${name} needs a positive number of seconds\n`);
    process.exit(2);
  }
  return value;
}

const ACCESS_TTL = option('--access-ttl', 600);
const CC_TTL = option('--cc-ttl', 900);

export const USER = {
  username: 'carol@example.com',
  password: 'interop pass',
  id: 'c0ffee00-0000-4000-8000-000000000001',
};

// The Basic client's secret has the characters RFC 6749 §2.3.1 makes a
// client form-urlencode before base64 (oidc-provider decodes them).
export const CLIENTS = {
  post: { id: 'svc-post', secret: 'post-secret-0123456789' },
  basic: { id: 'svc-basic', secret: 'b4s:c+/ %&secret' },
  public: { id: 'cli-public' },
};

const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

const counts = {
  discovery: 0,
  password: 0,
  refresh_token: 0,
  client_credentials: 0,
  grant_errors: 0,
  revocation: 0,
  // POSTs to the token endpoint carrying `Authorization: Basic`.
  basic_auth: 0,
};

/**
 * Storage for oidc-provider's models: a plain Map for the life of this
 * process (the built-in development adapter works too, but warns on every
 * start and evicts entries after 1000).
 */
const store = new Map();
const byGrant = new Map();

class TestAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload) {
    const key = this.key(id);
    store.set(key, payload);
    if (payload.grantId) {
      const keys = byGrant.get(payload.grantId) || [];
      keys.push(key);
      byGrant.set(payload.grantId, keys);
    }
    if (this.model === 'Session' && payload.uid) store.set(`sessionUid:${payload.uid}`, id);
    if (payload.userCode) store.set(`userCode:${payload.userCode}`, id);
  }

  async find(id) {
    return store.get(this.key(id));
  }

  async findByUid(uid) {
    return this.find(store.get(`sessionUid:${uid}`));
  }

  async findByUserCode(userCode) {
    return this.find(store.get(`userCode:${userCode}`));
  }

  async consume(id) {
    const payload = store.get(this.key(id));
    if (payload) payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    store.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    for (const key of byGrant.get(grantId) || []) store.delete(key);
    byGrant.delete(grantId);
  }
}

async function findAccount(ctx, id) {
  if (id !== USER.id) return undefined;
  return {
    accountId: id,
    async claims() {
      return {
        sub: id,
        email: USER.username,
        email_verified: true,
        name: 'Carol Interop',
      };
    },
  };
}

function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: 'interop', use: 'sig', alg: 'RS256' };
}

/**
 * grant_type=password: checks the fixed test user, then issues an access
 * token, a refresh token (the client must allow refresh_token) and, with
 * `openid` in scope, an ID token — the same way oidc-provider's own
 * authorization_code grant does.
 */
async function passwordGrant(ctx, next) {
  const { client, params, provider } = ctx.oidc;
  if (!params.username || !params.password) {
    throw new InvalidRequest('username and password are required');
  }
  if (params.username !== USER.username || params.password !== USER.password) {
    throw new InvalidGrant('invalid user credentials');
  }
  const requested = new Set((params.scope || '').split(' ').filter(Boolean));
  const granted = [...requested].filter((s) => OIDC_SCOPES.includes(s));

  const { Grant, AccessToken, RefreshToken, IdToken, Account } = provider;
  const account = await Account.findAccount(ctx, USER.id);
  ctx.oidc.entity('Account', account);

  const grant = new Grant({ accountId: USER.id, clientId: client.clientId });
  if (granted.length) grant.addOIDCScope(granted.join(' '));
  const grantId = await grant.save();
  ctx.oidc.entity('Grant', grant);

  const gty = 'password';
  const scope = granted.join(' ') || undefined;
  const at = new AccessToken({
    accountId: USER.id,
    client,
    grantId,
    gty,
  });
  at.scope = grant.getOIDCScopeFiltered(new Set(granted));
  ctx.oidc.entity('AccessToken', at);
  const accessToken = await at.save();

  let refreshToken;
  if (client.grantTypeAllowed('refresh_token')) {
    const rt = new RefreshToken({
      accountId: USER.id,
      authTime: Math.floor(Date.now() / 1000),
      client,
      grantId,
      gty,
      rotations: 0,
      scope,
    });
    ctx.oidc.entity('RefreshToken', rt);
    refreshToken = await rt.save();
  }

  let idToken;
  if (requested.has('openid')) {
    const token = new IdToken(
      { ...(await account.claims('id_token', scope)), auth_time: Math.floor(Date.now() / 1000) },
      { ctx },
    );
    token.scope = grant.getOIDCScopeFiltered(new Set(granted));
    token.set('at_hash', accessToken);
    idToken = await token.issue({ use: 'idtoken' });
  }

  ctx.body = {
    access_token: accessToken,
    expires_in: at.expiration,
    id_token: idToken,
    refresh_token: refreshToken,
    scope: at.scope || undefined,
    token_type: at.tokenType,
  };
  await next();
}

function start() {
  const server = createServer();
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    const issuer = `http://127.0.0.1:${port}`;

    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: CLIENTS.post.id,
          client_secret: CLIENTS.post.secret,
          token_endpoint_auth_method: 'client_secret_post',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        },
        {
          client_id: CLIENTS.basic.id,
          client_secret: CLIENTS.basic.secret,
          token_endpoint_auth_method: 'client_secret_basic',
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
        },
        {
          client_id: CLIENTS.public.id,
          token_endpoint_auth_method: 'none',
          grant_types: ['password', 'refresh_token'],
          response_types: [],
          redirect_uris: [],
        },
      ],
      adapter: TestAdapter,
      findAccount,
      jwks: { keys: [signingKey()] },
      cookies: { keys: [randomBytes(32).toString('hex')] },
      scopes: OIDC_SCOPES,
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        revocation: { enabled: true },
        introspection: { enabled: true },
      },
      rotateRefreshToken: true,
      ttl: {
        AccessToken: ACCESS_TTL,
        ClientCredentials: CC_TTL,
        IdToken: ACCESS_TTL,
        RefreshToken: 3600,
        Grant: 3600,
        Session: 3600,
        Interaction: 600,
        AuthorizationCode: 60,
      },
    });
    provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope']);

    provider.on('grant.success', (ctx) => {
      const gt = ctx.oidc.params.grant_type;
      if (gt in counts) counts[gt] += 1;
    });
    provider.on('grant.error', () => {
      counts.grant_errors += 1;
    });

    const callback = provider.callback();
    server.on('request', (req, res) => {
      if (req.url === '/_test/counts') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(counts));
        return;
      }
      if (req.method === 'GET' && req.url.endsWith('/.well-known/openid-configuration')) {
        counts.discovery += 1;
      }
      if (req.method === 'POST' && req.url === '/token'
          && /^basic /i.test(req.headers.authorization || '')) {
        counts.basic_auth += 1;
      }
      if (req.method === 'POST' && req.url === '/token/revocation') {
        res.on('finish', () => {
          if (res.statusCode === 200) counts.revocation += 1;
        });
      }
      callback(req, res);
    });

    process.stdout.write(
      `${JSON.stringify({
        issuer,
        username: USER.username,
        password: USER.password,
        clients: CLIENTS,
        access_ttl: ACCESS_TTL,
        cc_ttl: CC_TTL,
      })}\n`,
    );
  });

  // The test holds our stdin; when it closes, we are done.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

start();
