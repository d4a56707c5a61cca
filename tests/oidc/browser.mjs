#!/usr/bin/env node
// A person at a browser, for dexcred's interactive-login tests: headless
// Debian Chromium driven by playwright-core signs in on tests/oidc/server.mjs's
// own pages and follows the redirect back to dexcred's loopback listener.
//
// Usable as dexcred's --browser-command, which appends the URL as the last
// argument:   node /abs/path/tests/oidc/browser.mjs [--mode M] [...] URL
//
// Options (flag, or the environment variable when the flag is absent):
//   --mode M          DEXCRED_TEST_BROWSER_MODE      default "login" (see MODES)
//   --log FILE        DEXCRED_TEST_BROWSER_LOG       JSON lines: one "start" per run
//                                                    (= one browser window), one "end"
//   --username U      DEXCRED_TEST_BROWSER_USERNAME  default carol@example.com
//   --password P      DEXCRED_TEST_BROWSER_PASSWORD  default "interop pass"
//   --user-code C     DEXCRED_TEST_BROWSER_USER_CODE device modes, when the URL has none
//   --expect REGEX    DEXCRED_TEST_BROWSER_EXPECT    the listener's page must match
//                                                    (login mode; default: close)
//   --timeout SECS    DEXCRED_TEST_BROWSER_TIMEOUT   whole run, default 30
//
// Exit status: 0 the mode's job was done; 1 it was not (timeout, unexpected
// page, listener unreachable; the reason is in the log); 2 bad usage.
// It prints nothing on stdout, and on stderr only when there is no log file,
// so it never mixes into dexcred's output. It never waits for anyone: every
// run ends by itself within --timeout (plus a few seconds to close Chromium).
// Chromium can reach loopback only: every other host goes to a dead proxy.

import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const MODES = {
  // Sign in, consent, follow the redirect to the listener, check its page.
  login: 'authorization code: sign in and allow',
  // Sign in, refuse consent: the provider redirects with error=access_denied.
  deny: 'authorization code: sign in and deny',
  // Sign in, allow, then change `state` in the redirect before following it.
  'tamper-state': 'authorization code: redirect with a different state',
  // Sign in, allow, then drop `code` from the redirect before following it.
  'drop-code': 'authorization code: redirect without the code',
  // Only record the URL (a person who never comes back).
  ignore: 'record the URL, open nothing',
  // Device flow: open the verification URI, enter/confirm the code, sign in, allow.
  device: 'device flow: confirm the code, sign in and allow',
  // Device flow: abort on the code confirmation page ("not my device").
  'device-deny': 'device flow: abort at the code confirmation',
  // Device flow: confirm the code, sign in, deny consent.
  'device-deny-consent': 'device flow: sign in and deny',
};

const started = Date.now();
let logFile;

function record(event) {
  const line = `${JSON.stringify({ ...event, pid: process.pid, ms: Date.now() - started })}\n`;
  if (logFile) {
    appendFileSync(logFile, line, { mode: 0o600 });
  } else if (event.event === 'end' && event.result !== 'ok') {
    process.stderr.write(`browser.mjs: ${line}`);
  }
}

function usage(message) {
  process.stderr.write(`browser.mjs: ${message}\nusage: node browser.mjs [--mode ${Object.keys(MODES).join('|')}] [--log FILE] [--username U] [--password P] [--user-code C] [--expect REGEX] [--timeout SECS] URL\n`);
  process.exit(2);
}

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      mode: { type: 'string' },
      log: { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      'user-code': { type: 'string' },
      expect: { type: 'string' },
      timeout: { type: 'string' },
    },
  });
} catch (e) {
  usage(e.message);
}
const env = (name) => process.env[`DEXCRED_TEST_BROWSER_${name}`] || undefined;
const opt = args.values;
const mode = opt.mode ?? env('MODE') ?? 'login';
logFile = opt.log ?? env('LOG');
const username = opt.username ?? env('USERNAME') ?? 'carol@example.com';
const password = opt.password ?? env('PASSWORD') ?? 'interop pass';
const userCode = opt['user-code'] ?? env('USER_CODE');
const expect = new RegExp(opt.expect ?? env('EXPECT') ?? 'close', 'i');
const timeoutSecs = Number(opt.timeout ?? env('TIMEOUT') ?? 30);

if (!(mode in MODES)) usage(`unknown mode ${JSON.stringify(mode)}`);
if (!Number.isFinite(timeoutSecs) || timeoutSecs <= 0) usage('--timeout needs a positive number of seconds');
if (args.positionals.length !== 1) usage('exactly one URL, last');
let target;
try {
  target = new URL(args.positionals[0]);
} catch {
  usage(`not a URL: ${args.positionals[0]}`);
}
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
if (target.protocol !== 'http:' || !LOOPBACK.has(target.hostname)) {
  usage(`refusing a non-loopback URL: ${target.origin}`);
}

const isDevice = mode.startsWith('device');
const query = Object.fromEntries(target.searchParams);
// Where dexcred listens: the redirect_uri without its query.
const redirectBase = query.redirect_uri ? (() => {
  const u = new URL(query.redirect_uri);
  return `${u.origin}${u.pathname}`;
})() : undefined;
if (!isDevice && mode !== 'ignore' && !redirectBase) usage('an authorization URL needs a redirect_uri');

record({
  event: 'start',
  mode,
  url: `${target.origin}${target.pathname}`,
  // The authorization request's parameters (state, nonce and the PKCE
  // challenge are not secrets), so tests can check what dexcred sent.
  params: query,
});

const outcome = { result: 'timeout' };
let context;
let userDataDir;
let finished = false;

async function finish(code) {
  if (finished) return;
  finished = true;
  // Closing Chromium is bounded too; process exit kills it regardless.
  const hard = setTimeout(() => process.exit(code), 5000);
  try {
    if (context) await context.close();
  } catch {
    // already gone
  }
  clearTimeout(hard);
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  record({ event: 'end', mode, ...outcome });
  process.exit(code);
}

setTimeout(() => {
  outcome.result = 'timeout';
  outcome.reason = `gave up after ${timeoutSecs} s${outcome.step ? ` at ${outcome.step}` : ''}`;
  finish(1);
}, timeoutSecs * 1000);
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    outcome.result = 'killed';
    outcome.reason = signal;
    finish(1);
  });
}
// A closed terminal must not stop a login that is under way.
process.on('SIGHUP', () => {});

/** Changes the redirect before the browser follows it (the mode's tamper). */
function tamper(url) {
  const u = new URL(url);
  if (mode === 'tamper-state') {
    u.searchParams.set('state', `${u.searchParams.get('state') || ''}tampered`);
  } else if (mode === 'drop-code') {
    u.searchParams.delete('code');
  }
  return u.href;
}

/** What the redirect carried, without the authorization code itself. */
function describeRedirect(url) {
  const p = new URL(url).searchParams;
  return {
    has_code: p.has('code'),
    state_matches: p.get('state') === query.state,
    error: p.get('error') ?? undefined,
    error_description: p.get('error_description') ?? undefined,
  };
}

/** Which of the server's pages is showing (by the element ids server.mjs uses). */
async function pageKind(page) {
  return page.evaluate(() => {
    if (document.readyState !== 'complete') return null;
    const has = (id) => document.getElementById(id) !== null;
    if (has('login-form')) return document.getElementById('error') ? 'login-failed' : 'login';
    if (has('approve')) return 'consent';
    if (has('confirm')) return 'device-confirm';
    if (has('continue')) return has('error') ? 'device-input-error' : 'device-input';
    if (has('done')) return 'done';
    if (has('error')) return 'error';
    return 'other';
  });
}

/** Clicks and waits for the navigation the click starts (all are form posts). */
async function submit(page, selector) {
  const navigated = page.waitForEvent('framenavigated', {
    predicate: (frame) => frame === page.mainFrame(),
    timeout: 0,
  });
  await page.click(selector);
  await navigated;
}

async function main() {
  if (mode === 'ignore') {
    outcome.result = 'ok';
    return finish(0);
  }
  userDataDir = mkdtempSync(join(tmpdir(), 'dexcred-browser-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    handleSIGHUP: false,
    handleSIGINT: false,
    handleSIGTERM: false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      // Loopback is always reached directly; anything else would go to a
      // proxy that is not there.
      '--proxy-server=http://127.0.0.1:9',
    ],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(0); // the run's own timeout bounds everything

  const atListener = (url) => redirectBase !== undefined && url.startsWith(redirectBase)
    && (url.length === redirectBase.length || url[redirectBase.length] === '?');

  if (redirectBase) {
    // The provider's redirect to the listener is the last hop of a redirect
    // chain, which playwright's page.route does not see; Chromium's own
    // request interception (CDP Fetch) does.
    const cdp = await context.newCDPSession(page);
    cdp.on('Fetch.requestPaused', async ({ requestId, request }) => {
      let url;
      if (atListener(request.url) && !outcome.redirect) {
        outcome.redirect = describeRedirect(request.url);
        if (mode === 'tamper-state' || mode === 'drop-code') {
          url = tamper(request.url);
          outcome.tampered = true;
        }
      }
      try {
        await cdp.send('Fetch.continueRequest', url ? { requestId, url } : { requestId });
      } catch {
        // the page went away
      }
    });
    await cdp.send('Fetch.enable', {
      patterns: [{ urlPattern: `${redirectBase}*`, requestStage: 'Request' }],
    });
    page.on('requestfailed', (request) => {
      if (atListener(request.url())) {
        outcome.listener_error = request.failure()?.errorText;
      }
    });
    page.on('response', (response) => {
      if (atListener(response.url())) outcome.listener_status = response.status();
    });
  }

  outcome.step = 'open';
  await page.goto(target.href, { waitUntil: 'commit' });

  let lastHandled;
  for (;;) {
    if (outcome.listener_error) {
      outcome.result = 'listener-unreachable';
      return finish(1);
    }
    if (outcome.listener_status !== undefined) {
      // The listener answered: wait for its page to load and read it.
      await page.waitForLoadState('load');
      const text = (await page.evaluate(() => document.body?.innerText ?? '')).trim();
      outcome.listener_text = text.slice(0, 500);
      if (mode === 'login' && !expect.test(text)) {
        outcome.result = 'unexpected-listener-page';
        return finish(1);
      }
      outcome.result = 'ok';
      return finish(0);
    }
    let kind = null;
    try {
      kind = await pageKind(page);
    } catch {
      // navigating: the old document is gone
    }
    const key = `${kind}:${page.url()}`;
    if (!kind || key === lastHandled) {
      await page.waitForTimeout(25);
      continue;
    }
    lastHandled = key;
    outcome.step = kind;
    switch (kind) {
      case 'login':
        await page.fill('#username', username);
        await page.fill('#password', password);
        await submit(page, '#sign-in');
        break;
      case 'login-failed':
        outcome.result = 'login-refused';
        return finish(1);
      case 'consent':
        await submit(page, mode === 'deny' || mode === 'device-deny-consent' ? '#deny' : '#approve');
        break;
      case 'device-input':
        if (!userCode) {
          outcome.result = 'no-user-code';
          outcome.reason = 'the page asks for the user code: give --user-code';
          return finish(1);
        }
        await page.fill('input[name="user_code"]', userCode);
        await submit(page, '#continue');
        break;
      case 'device-input-error':
        // Where the provider sends a refused (or bad) device sign-in.
        outcome.page_error = (await page.textContent('#error'))?.trim();
        outcome.result = mode === 'device-deny-consent' ? 'ok' : 'device-code-refused';
        return finish(mode === 'device-deny-consent' ? 0 : 1);
      case 'device-confirm':
        outcome.user_code = await page.textContent('#user-code');
        await submit(page, mode === 'device-deny' ? '#abort' : '#confirm');
        if (mode === 'device-deny') {
          outcome.result = 'ok';
          return finish(0);
        }
        break;
      case 'done':
        outcome.result = isDevice ? 'ok' : 'unexpected-page';
        return finish(isDevice ? 0 : 1);
      case 'error':
        outcome.page_error = (await page.textContent('#error'))?.trim();
        outcome.page_error_description = (await page.textContent('#error-description').catch(() => null))?.trim();
        outcome.result = 'server-error-page';
        return finish(1);
      default:
        if (page.url().startsWith('chrome-error:')) {
          outcome.result = 'navigation-failed';
          return finish(1);
        }
        // e.g. the device flow's self-submitting form: wait for it to move on.
        lastHandled = undefined;
        await page.waitForTimeout(25);
    }
  }
}

function crashed(err) {
  if (finished) return;
  outcome.result = 'error';
  outcome.reason = String(err?.message ?? err).split('\n')[0];
  finish(1);
}
process.on('uncaughtException', crashed);
process.on('unhandledRejection', crashed);
main().catch(crashed);
