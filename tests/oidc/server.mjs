// A real OpenID Connect server for dexcred's interop tests: the
// `oidc-provider` package (pinned in package-lock.json), configured with
// client credentials, token revocation, introspection, refresh-token
// rotation, authorization code + PKCE (S256 only, required) with its own
// login and consent pages, and the device authorization grant (RFC 8628),
// plus a resource-owner password grant registered with
// `provider.registerGrantType` that issues tokens through oidc-provider's
// own models (Grant, AccessToken, RefreshToken, IdToken).
//
// Usage: node tests/oidc/server.mjs [options]   (see README.md here)
//   --port N               listen on 127.0.0.1:N (default 0: an ephemeral port)
//   --access-ttl SECS      access and ID token lifetime (default 600)
//   --id-token-ttl SECS    ID token lifetime (default: --access-ttl)
//   --refresh-ttl SECS     refresh token lifetime (default 3600)
//   --cc-ttl SECS          client-credentials token lifetime (default 900)
//   --device-code-ttl SECS device code lifetime (default 600)
//   --device-interval SECS `interval` in device authorization responses (default 1)
//   --slow-down N          answer the first N polls of each device code slow_down
//   --fixed-port N         register http://{127.0.0.1,localhost}:N{/,/callback}
//                          for the exact-redirect client (repeatable)
//   --fixed-redirect-uri U register U for the exact-redirect client (repeatable)
//   --username NAME, --password PASS   the one test user
//
// Listens on http://127.0.0.1:<port> (dexcred accepts plain http only
// for loopback), prints one JSON line on stdout:
//   {"issuer":"http://127.0.0.1:PORT","username":…,"password":…,"clients":{…},…}
// and exits when stdin closes (the test process died or dropped us).
// `GET /_test/counts` returns counters of what the server did, by kind.
// Nothing here, nor in the pages it serves, refers to any non-loopback host.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { InvalidGrant, InvalidRequest } = errors;

function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'access-ttl': { type: 'string', default: '600' },
      'id-token-ttl': { type: 'string' },
      'refresh-ttl': { type: 'string', default: '3600' },
      'cc-ttl': { type: 'string', default: '900' },
      'device-code-ttl': { type: 'string', default: '600' },
      'device-interval': { type: 'string', default: '1' },
      'slow-down': { type: 'string', default: '0' },
      'fixed-port': { type: 'string', multiple: true, default: [] },
      'fixed-redirect-uri': { type: 'string', multiple: true, default: [] },
      username: { type: 'string', default: 'carol@example.com' },
      password: { type: 'string', default: 'interop pass' },
    },
    strict: true,
  }).values;
} catch (e) {
  fail(e.message);
}

/** A whole number >= `min` from option `name`. */
function number(name, min = 1) {
  const value = Number(parsed[name]);
  if (!Number.isInteger(value) || value < min) {
    fail(`--${name} needs a whole number >= ${min}, not ${JSON.stringify(parsed[name])}`);
  }
  return value;
}

const PORT = number('port', 0);
const ACCESS_TTL = number('access-ttl');
const ID_TTL = parsed['id-token-ttl'] === undefined ? ACCESS_TTL : number('id-token-ttl');
const REFRESH_TTL = number('refresh-ttl');
const CC_TTL = number('cc-ttl');
const DEVICE_CODE_TTL = number('device-code-ttl');
const DEVICE_INTERVAL = number('device-interval');
const SLOW_DOWN = number('slow-down', 0);
const FIXED_PORTS = parsed['fixed-port'].map((p) => {
  const n = Number(p);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--fixed-port needs a port number, not ${p}`);
  return n;
});

export const USER = {
  username: parsed.username,
  password: parsed.password,
  id: 'c0ffee00-0000-4000-8000-000000000001',
};

// The Basic client's secret has the characters RFC 6749 §2.3.1 makes a
// client form-urlencode before base64 (oidc-provider decodes them).
// `native` and `native_secret` accept any loopback redirect URI (see
// anyLoopbackRedirect); `fixed` only the URIs registered by --fixed-port and
// --fixed-redirect-uri.
export const CLIENTS = {
  post: { id: 'svc-post', secret: 'post-secret-0123456789' },
  basic: { id: 'svc-basic', secret: 'b4s:c+/ %&secret' },
  public: { id: 'cli-public' },
  native: { id: 'cli-native' },
  native_secret: { id: 'cli-native-secret', secret: 'native-secret-0123456789' },
  fixed: { id: 'cli-fixed' },
};

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';
const INTERACTIVE_GRANTS = ['authorization_code', 'refresh_token', DEVICE_GRANT];

const FIXED_REDIRECT_URIS = [
  ...FIXED_PORTS.flatMap((port) => ['127.0.0.1', 'localhost'].flatMap((host) => [
    `http://${host}:${port}/`,
    `http://${host}:${port}/callback`,
  ])),
  ...parsed['fixed-redirect-uri'],
];

const OIDC_SCOPES = ['openid', 'offline_access', 'profile', 'email'];

const counts = {
  discovery: 0,
  password: 0,
  refresh_token: 0,
  client_credentials: 0,
  authorization_code: 0,
  device_code: 0,
  grant_errors: 0,
  // Token endpoint errors by `error` code (authorization_pending,
  // slow_down, expired_token, access_denied, invalid_grant, …).
  token_errors: {},
  revocation: 0,
  // POSTs to the token endpoint carrying `Authorization: Basic`.
  basic_auth: 0,
  // Authorization responses: successful (a code for a redirect URI, or a
  // device code approved), and errors (access_denied, bad requests).
  authorization: 0,
  authorization_errors: 0,
  device_authorization: 0,
  // Device polls that came sooner than the interval then in force.
  device_polls_too_fast: 0,
  logins: 0,
  login_failures: 0,
  consents: 0,
  denials: 0,
  // Every request, by "METHOD /path" (ids in paths replaced by :uid).
  requests: {},
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

// ---------------------------------------------------------------------
// Pages: plain HTML, no script, no style or font from anywhere else (a
// browser in the tests must never reach beyond loopback). Element ids are
// what tests/oidc/browser.mjs clicks.

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}input,button{display:block;margin:.5em 0}</style>
</head><body><h1>${escape(title)}</h1>
${body}
</body></html>`;
}

function loginPage(uid, client, message) {
  return page('Sign in', `<p>to <b id="client">${escape(client)}</b></p>
${message ? `<p id="error">${escape(message)}</p>` : ''}
<form id="login-form" method="post" action="/interaction/${uid}/login">
<label>Email <input id="username" name="login" type="text" autocomplete="username" autofocus required></label>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label>
<button id="sign-in" type="submit">Sign in</button>
</form>
<form method="post" action="/interaction/${uid}/abort"><button id="cancel" type="submit">Cancel</button></form>`);
}

function consentPage(uid, client, scopes) {
  return page('Authorize', `<p><b id="client">${escape(client)}</b> asks for: <span id="scopes">${escape(scopes.join(' '))}</span></p>
<form method="post" action="/interaction/${uid}/confirm"><button id="approve" type="submit">Allow</button></form>
<form method="post" action="/interaction/${uid}/abort"><button id="deny" type="submit">Deny</button></form>`);
}

const deviceFlowPages = {
  async userCodeInputSource(ctx, form, out, err) {
    const message = err ? `<p id="error">${escape(err.name === 'AbortedError' ? 'The sign-in was aborted' : 'That code is not valid')}</p>` : '';
    ctx.body = page('Device sign-in', `${message}<p>Enter the code shown on your device.</p>
${form}
<button id="continue" type="submit" form="op.deviceInputForm">Continue</button>`);
  },
  async userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
    ctx.body = page('Confirm device', `<p><b id="client">${escape(client.clientId)}</b> shows the code <code id="user-code">${escape(userCode)}</code>.</p>
${form}
<button id="confirm" type="submit" form="op.deviceConfirmForm">Continue</button>
<button id="abort" type="submit" form="op.deviceConfirmForm" name="abort" value="yes">Abort</button>`);
  },
  async successSource(ctx) {
    ctx.body = page('Sign-in complete', '<p id="done">Your device is signed in. You can close this page.</p>');
  },
};

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page('Error', `<p id="error">${escape(out.error)}</p><p id="error-description">${escape(out.error_description || '')}</p>`);
}

async function logoutSource(ctx, form) {
  ctx.body = page('Sign out', `${form}<button id="logout" type="submit" form="op.logoutForm" value="yes" name="logout">Sign out</button>`);
}

async function postLogoutSuccessSource(ctx) {
  ctx.body = page('Signed out', '<p id="done">You are signed out.</p>');
}

/**
 * RFC 8252 §7.3 for the native clients: any port, and here also any path,
 * on the loopback interface over http (127.0.0.1, localhost or [::1]). The
 * built-in rule for native clients frees only the port.
 */
function anyLoopbackRedirect(value) {
  let url;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  return url.protocol === 'http:'
    && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)
    && !url.username && !url.password && !url.hash;
}

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 65536) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function sendHtml(res, status, html) {
  res.statusCode = status;
  res.setHeader('content-type', 'text/html; charset=utf-8');
  res.setHeader('cache-control', 'no-store');
  res.end(html);
}

/**
 * The login and consent pages (oidc-provider's interaction API): the
 * provider sends the browser to /interaction/UID; we show the page for the
 * prompt it wants and hand the result back with interactionFinished.
 */
async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new InvalidRequest('interaction mismatch');
  const { prompt, params } = details;
  const client = params.client_id;
  if (req.method === 'GET' && !action) {
    if (prompt.name === 'login') return sendHtml(res, 200, loginPage(uid, client));
    const scopes = prompt.details.missingOIDCScope || [];
    return sendHtml(res, 200, consentPage(uid, client, scopes));
  }
  if (req.method !== 'POST') return sendHtml(res, 405, page('Error', '<p id="error">method not allowed</p>'));
  const form = await readForm(req);
  if (action === 'login' && prompt.name === 'login') {
    if (form.get('login') !== USER.username || form.get('password') !== USER.password) {
      counts.login_failures += 1;
      return sendHtml(res, 200, loginPage(uid, client, 'Wrong email or password.'));
    }
    counts.logins += 1;
    return provider.interactionFinished(req, res, { login: { accountId: USER.id } }, { mergeWithLastSubmission: false });
  }
  if (action === 'confirm' && prompt.name === 'consent') {
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: client });
    const { missingOIDCScope, missingOIDCClaims, missingResourceScopes } = prompt.details;
    if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(' '));
    if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
    for (const [indicator, scope] of Object.entries(missingResourceScopes || {})) {
      grant.addResourceScope(indicator, scope.join(' '));
    }
    const grantId = await grant.save();
    counts.consents += 1;
    return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }
  if (action === 'abort') {
    counts.denials += 1;
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  return sendHtml(res, 400, page('Error', '<p id="error">unexpected form for this step</p>'));
}

/** `requests` key: method and path, with generated ids replaced. */
function requestKey(req) {
  const path = req.url.split('?')[0]
    .replace(/^\/interaction\/[^/]+/, '/interaction/:uid')
    .replace(/^\/auth\/[^/]+/, '/auth/:uid')
    .replace(/^\/device\/(?!auth$)[^/]+/, '/device/:uid')
    .replace(/^\/session\/end\/confirm.*/, '/session/end/confirm');
  return `${req.method} ${path}`;
}

/**
 * Device polling rules the package leaves out: it sends no `interval`
 * (RFC 8628 then means 5 s, too slow for tests) and never answers
 * slow_down. Here the interval is --device-interval; a poll sooner than the
 * interval in force (less 250 ms of slack) is counted
 * (device_polls_too_fast) and answered slow_down with the interval raised
 * by 5 s, as RFC 8628 §3.5 describes; --slow-down N answers the first N
 * polls of each device code slow_down, whatever the user did meanwhile (a
 * slow_down changes nothing at the server: the next poll gets the answer).
 */
function devicePolling() {
  const polls = new Map(); // device_code -> { clientId, last, interval, forced, expires }
  const error = (ctx, code, description) => {
    ctx.status = 400;
    ctx.set('cache-control', 'no-store');
    ctx.body = { error: code, error_description: description };
    counts.token_errors[code] = (counts.token_errors[code] || 0) + 1;
  };
  return async (ctx, next) => {
    const arrived = Date.now();
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.is('application/x-www-form-urlencoded')) {
      // Read the form here to look at it first; oidc-provider then parses
      // the same text from req.body (it warns once about that, harmlessly).
      let text = '';
      ctx.req.setEncoding('utf8');
      for await (const chunk of ctx.req) text += chunk;
      ctx.req.body = text;
      const form = new URLSearchParams(text);
      const state = form.get('grant_type') === DEVICE_GRANT && polls.get(form.get('device_code'));
      if (state && (!form.has('client_id') || state.clientId === form.get('client_id'))
          && arrived < state.expires) {
        const early = arrived - state.last < state.interval * 1000 - 250;
        state.last = arrived;
        if (early) counts.device_polls_too_fast += 1;
        if (early || state.forced > 0) {
          if (!early) state.forced -= 1;
          state.interval += 5;
          return error(ctx, 'slow_down', 'you are polling too quickly');
        }
      }
    }
    await next();
    if (ctx.method === 'POST' && ctx.path === '/device/auth' && ctx.status === 200
        && ctx.body && typeof ctx.body === 'object') {
      ctx.body.interval = DEVICE_INTERVAL;
      polls.set(ctx.body.device_code, {
        clientId: ctx.oidc.client.clientId,
        last: arrived,
        interval: DEVICE_INTERVAL,
        forced: SLOW_DOWN,
        expires: arrived + DEVICE_CODE_TTL * 1000,
      });
    }
  };
}

function countTokenErrors() {
  return async (ctx, next) => {
    await next();
    if (ctx.method === 'POST' && ctx.path === '/token' && ctx.status >= 400
        && ctx.body && typeof ctx.body === 'object' && ctx.body.error) {
      counts.token_errors[ctx.body.error] = (counts.token_errors[ctx.body.error] || 0) + 1;
    }
  };
}

function clients() {
  const interactive = {
    grant_types: INTERACTIVE_GRANTS,
    response_types: ['code'],
  };
  return [
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
    {
      ...interactive,
      client_id: CLIENTS.native.id,
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      ...interactive,
      client_id: CLIENTS.native_secret.id,
      client_secret: CLIENTS.native_secret.secret,
      application_type: 'native',
      token_endpoint_auth_method: 'client_secret_post',
      redirect_uris: ['http://127.0.0.1/callback'],
    },
    {
      ...interactive,
      client_id: CLIENTS.fixed.id,
      // `web`: oidc-provider then matches redirect URIs exactly, port included.
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      redirect_uris: FIXED_REDIRECT_URIS.length ? FIXED_REDIRECT_URIS : ['http://127.0.0.1:9/unused'],
    },
  ];
}

function start() {
  const server = createServer();
  server.on('error', (e) => fail(`cannot listen on 127.0.0.1:${PORT}: ${e.message}`));
  server.listen(PORT, '127.0.0.1', () => {
    const { port } = server.address();
    const issuer = `http://127.0.0.1:${port}`;

    const provider = new Provider(issuer, {
      clients: clients(),
      adapter: TestAdapter,
      findAccount,
      jwks: { keys: [signingKey()] },
      cookies: { keys: [randomBytes(32).toString('hex')] },
      scopes: OIDC_SCOPES,
      interactions: {
        url: (ctx, i) => `/interaction/${i.uid}`,
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        revocation: { enabled: true },
        introspection: { enabled: true },
        deviceFlow: { enabled: true, ...deviceFlowPages },
        rpInitiatedLogout: { enabled: true, logoutSource, postLogoutSuccessSource },
      },
      pkce: { methods: ['S256'], required: () => true },
      // Like Keycloak: an interactive login gets a refresh token whenever
      // the client may use one, with or without offline_access (which
      // oidc-provider otherwise drops unless prompt=consent).
      issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
      renderError,
      rotateRefreshToken: true,
      ttl: {
        AccessToken: ACCESS_TTL,
        ClientCredentials: CC_TTL,
        IdToken: ID_TTL,
        RefreshToken: REFRESH_TTL,
        DeviceCode: DEVICE_CODE_TTL,
        Grant: 3600,
        Session: 3600,
        Interaction: 600,
        AuthorizationCode: 60,
      },
    });
    provider.registerGrantType('password', passwordGrant, ['username', 'password', 'scope']);

    const nativeClients = new Set([CLIENTS.native.id, CLIENTS.native_secret.id]);
    const { redirectUriAllowed } = provider.Client.prototype;
    provider.Client.prototype.redirectUriAllowed = function allowed(value) {
      if (nativeClients.has(this.clientId)) return anyLoopbackRedirect(value);
      return redirectUriAllowed.call(this, value);
    };

    provider.use(devicePolling());
    provider.use(countTokenErrors());

    provider.on('grant.success', (ctx) => {
      let gt = ctx.oidc.params.grant_type;
      if (gt === DEVICE_GRANT) gt = 'device_code';
      if (gt in counts) counts[gt] += 1;
    });
    provider.on('grant.error', () => {
      counts.grant_errors += 1;
    });
    provider.on('authorization.success', () => {
      counts.authorization += 1;
    });
    provider.on('authorization.error', () => {
      counts.authorization_errors += 1;
    });
    provider.on('device_authorization.success', () => {
      counts.device_authorization += 1;
    });
    // Keep failures visible in the test's server log.
    provider.on('server_error', (ctx, err) => process.stderr.write(`server_error: ${err.stack}\n`));

    const callback = provider.callback();
    server.on('request', (req, res) => {
      if (req.url === '/_test/counts') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(counts));
        return;
      }
      const key = requestKey(req);
      counts.requests[key] = (counts.requests[key] || 0) + 1;
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
      const m = /^\/interaction\/([^/?]+)(?:\/(login|confirm|abort))?(?:\?|$)/.exec(req.url);
      if (m) {
        interaction(provider, req, res, m[1], m[2]).catch((err) => {
          if (!res.headersSent) {
            sendHtml(res, err.statusCode || 400, page('Error', `<p id="error">${escape(err.error || 'error')}</p><p id="error-description">${escape(err.error_description || err.message)}</p>`));
          }
        });
        return;
      }
      callback(req, res);
    });

    process.stdout.write(
      `${JSON.stringify({
        issuer,
        port,
        username: USER.username,
        password: USER.password,
        clients: CLIENTS,
        fixed_redirect_uris: FIXED_REDIRECT_URIS,
        access_ttl: ACCESS_TTL,
        id_token_ttl: ID_TTL,
        refresh_ttl: REFRESH_TTL,
        cc_ttl: CC_TTL,
        device_code_ttl: DEVICE_CODE_TTL,
        device_interval: DEVICE_INTERVAL,
        browser: fileURLToPath(new URL('./browser.mjs', import.meta.url)),
      })}\n`,
    );
  });

  // The test holds our stdin; when it closes, we are done.
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}

start();
