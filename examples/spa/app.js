// The demo application's single-page mode (served at /spa/app.js by
// examples/demo_app.rs): the whole OpenID Connect code flow with PKCE runs in
// the browser, with fetch and WebCrypto only. The page is a public client
// (`token_endpoint_auth_method = "none"`); its calls to the bridge's token
// and userinfo endpoints are cross-origin, which the bridge's CORS answers
// allow for the origins of the client's redirect URIs.
//
// - Sign in: discovery, then a fresh state, nonce and PKCE verifier kept in
//   sessionStorage (this tab only), then the bridge's authorize URL.
// - /spa/cb: checks state and the `iss` parameter (RFC 9207), redeems the code
//   with the verifier, verifies the ID token (signature against the JWKS,
//   issuer, audience, expiry, nonce, at_hash), calls userinfo with the access
//   token and shows the claims. Tokens stay in this page's memory only.
// - Sign out: RP-Initiated Logout with id_token_hint, back to /spa/bye.
'use strict';

(() => {
  const content = document.getElementById('content');
  const title = document.getElementById('title');
  const issuer = content.dataset.issuer;
  const clientId = content.dataset.clientId;
  const redirectUri = window.location.origin + '/spa/cb';
  const afterLogout = window.location.origin + '/spa/bye';
  const PENDING = 'demo-spa-pending';

  // ------------------------------------------------------------ helpers

  const encoder = new TextEncoder();
  const decoder = new TextDecoder();

  function b64url(bytes) {
    let text = '';
    for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
    return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function fromB64url(text) {
    const padded = text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4);
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  const random = (n) => b64url(crypto.getRandomValues(new Uint8Array(n)));
  const sha256 = (text) => crypto.subtle.digest('SHA-256', encoder.encode(text));
  const json = (part) => JSON.parse(decoder.decode(fromB64url(part)));

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    node.append(...children);
    return node;
  }

  function button(id, label, action, quiet) {
    const node = el('button', { id, type: 'button', class: quiet ? 'button quiet' : 'button' }, label);
    node.addEventListener('click', () => {
      node.disabled = true;
      action().catch((e) => fail(e.message));
    });
    return node;
  }

  /** Replaces the page's heading and content (text only, never HTML). */
  function show(heading, ...nodes) {
    title.textContent = heading;
    document.title = heading + ' · Demo application';
    content.replaceChildren(...nodes);
  }

  function fail(why) {
    show('Sign-in failed', el('p', { id: 'failure' }, why),
      el('p', {}, el('a', { class: 'button', href: '/spa' }, 'Back')));
  }

  /** fetch, with a useful message when the browser withholds the answer. */
  async function call(url, init) {
    try {
      return await fetch(url, init);
    } catch (e) {
      throw new Error('The browser could not read the answer of ' + url + ' (' + e.message + '): ' +
        'is the bridge running, and does it allow this page\'s origin (CORS)?');
    }
  }

  async function discover() {
    const answer = await call(issuer + '/.well-known/openid-configuration');
    if (!answer.ok) throw new Error('The bridge\'s discovery answered ' + answer.status + '.');
    const metadata = await answer.json();
    if (metadata.issuer !== issuer) throw new Error('Discovery names another issuer: ' + metadata.issuer);
    return metadata;
  }

  // ------------------------------------------------------------- pages

  function home() {
    show('Single-page demo',
      el('p', {}, 'This page signs you in by itself: its script runs the code flow with PKCE ',
        'against the bridge at ', el('code', {}, issuer), ' and calls the token and userinfo ',
        'endpoints from the browser, across origins (the bridge\'s CORS answers allow it).'),
      el('p', {}, button('sign-in', 'Sign in', signIn)),
      el('p', { class: 'note' }, 'Public client ', el('code', {}, clientId),
        ', no secret. The server-side demo is ', el('a', { href: '/' }, 'here'), '.'));
  }

  async function signIn() {
    const metadata = await discover();
    const pending = { state: random(32), nonce: random(32), verifier: random(32) };
    sessionStorage.setItem(PENDING, JSON.stringify(pending));
    const url = new URL(metadata.authorization_endpoint);
    const params = {
      response_type: 'code',
      client_id: clientId,
      redirect_uri: redirectUri,
      scope: 'openid email profile',
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: b64url(await sha256(pending.verifier)),
      code_challenge_method: 'S256',
    };
    for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
    window.location.assign(url.href);
  }

  async function callback() {
    const answer = new URLSearchParams(window.location.search);
    // The code leaves the address bar and the history at once.
    window.history.replaceState(null, '', '/spa');
    const saved = sessionStorage.getItem(PENDING);
    sessionStorage.removeItem(PENDING);
    if (!saved) return fail('No sign-in was started from this tab, or it already came back. Start again.');
    const pending = JSON.parse(saved);
    if (answer.get('state') !== pending.state) {
      return fail('The state parameter does not match the sign-in started here.');
    }
    if (answer.get('iss') !== issuer) return fail('The answer does not come from the expected issuer.');
    if (answer.has('error')) {
      return fail('The bridge answered ' + answer.get('error') + ': ' +
        (answer.get('error_description') || 'no description'));
    }
    const code = answer.get('code');
    if (!code) return fail('The answer carries no code.');

    const metadata = await discover();
    // Cross-origin POST: readable only because the bridge allows this origin.
    const tokenAnswer = await call(metadata.token_endpoint, {
      method: 'POST',
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        client_id: clientId,
        code_verifier: pending.verifier,
      }),
    });
    const tokens = await tokenAnswer.json();
    if (!tokenAnswer.ok) {
      return fail('The code could not be redeemed: ' + tokens.error + ': ' + tokens.error_description);
    }
    const claims = await verifyIdToken(metadata, tokens, pending.nonce);
    // Cross-origin GET with Authorization: the browser sends a preflight first.
    const userinfoAnswer = await call(metadata.userinfo_endpoint, {
      headers: { Authorization: 'Bearer ' + tokens.access_token },
    });
    if (!userinfoAnswer.ok) return fail('userinfo answered ' + userinfoAnswer.status + '.');
    const userinfo = await userinfoAnswer.json();
    if (userinfo.sub !== claims.sub) return fail('userinfo speaks of another person than the ID token.');
    signedIn(metadata, tokens.id_token, claims, userinfo);
  }

  /** OIDC Core §3.1.3.7 with WebCrypto: RS256 and ES256 signatures. */
  async function verifyIdToken(metadata, tokens, nonce) {
    const [header64, payload64, signature64] = (tokens.id_token || '').split('.');
    if (!signature64) throw new Error('The token response has no ID token.');
    const header = json(header64);
    const algorithms = {
      RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      ES256: { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' },
    };
    const algorithm = algorithms[header.alg];
    if (!algorithm) throw new Error('This demo verifies RS256 and ES256 ID tokens, not ' + header.alg + '.');
    const jwks = await (await call(metadata.jwks_uri)).json();
    const jwk = (jwks.keys || []).find((k) => k.kid === header.kid);
    if (!jwk) throw new Error('The ID token\'s key is not in the bridge\'s JWKS.');
    const key = await crypto.subtle.importKey('jwk', jwk, algorithm, false, ['verify']);
    const signed = encoder.encode(header64 + '.' + payload64);
    if (!await crypto.subtle.verify(algorithm, key, fromB64url(signature64), signed)) {
      throw new Error('The ID token\'s signature does not verify.');
    }
    const claims = json(payload64);
    const audience = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    const now = Date.now() / 1000;
    if (claims.iss !== issuer) throw new Error('The ID token comes from another issuer.');
    if (!audience.includes(clientId) || (audience.length > 1 && claims.azp !== clientId)) {
      throw new Error('The ID token is meant for another application.');
    }
    if (typeof claims.exp !== 'number' || claims.exp < now - 60) throw new Error('The ID token has expired.');
    if (claims.nonce !== nonce) throw new Error('The ID token\'s nonce is not the one sent.');
    if (claims.at_hash) {
      const digest = new Uint8Array(await sha256(tokens.access_token));
      if (b64url(digest.slice(0, 16)) !== claims.at_hash) {
        throw new Error('The ID token\'s at_hash does not match the access token.');
      }
    }
    return claims;
  }

  function signedIn(metadata, idToken, claims, userinfo) {
    const team = [userinfo['https://slack.com/team_name'], userinfo['https://slack.com/team_id']];
    const rows = [
      ['Name', 'name', userinfo.name],
      ['Email', 'email', userinfo.email],
      ['Subject', 'sub', userinfo.sub],
      ['Workspace', 'team', team[0] && team[1] ? team[0] + ' (' + team[1] + ')' : team[0] || team[1]],
    ];
    const table = el('table', {}, ...rows.map(([label, id, value]) =>
      el('tr', {}, el('th', { scope: 'row' }, label), el('td', { id: 'claim-' + id }, value || '(not sent)'))));
    show('Signed in',
      el('p', {}, 'This page redeemed the code and called userinfo itself, from the browser. ',
        'The ID token\'s signature, issuer, audience, expiry and nonce were checked with WebCrypto.'),
      table,
      el('details', {}, el('summary', {}, 'Every claim of the ID token'),
        el('pre', { id: 'id-token-claims' }, JSON.stringify(claims, null, 2))),
      el('details', {}, el('summary', {}, 'The userinfo answer'),
        el('pre', { id: 'userinfo' }, JSON.stringify(userinfo, null, 2))),
      el('p', {}, button('sign-out', 'Sign out', async () => signOut(metadata, idToken), true)),
      el('p', { class: 'note' }, 'The tokens live in this page\'s memory only: reload it and the ',
        'application has forgotten you (the bridge has not, so signing in again is quick).'));
  }

  function signOut(metadata, idToken) {
    if (!metadata.end_session_endpoint) return window.location.assign(afterLogout);
    const url = new URL(metadata.end_session_endpoint);
    url.searchParams.set('id_token_hint', idToken);
    url.searchParams.set('post_logout_redirect_uri', afterLogout);
    url.searchParams.set('client_id', clientId);
    window.location.assign(url.href);
  }

  function signedOut() {
    show('Signed out',
      el('p', {}, 'You are signed out of the single-page demo and of the bridge.'),
      el('p', {}, el('a', { class: 'button', href: '/spa' }, 'Home')));
  }

  const routes = { '/spa/cb': callback, '/spa/bye': signedOut };
  Promise.resolve((routes[window.location.pathname] || home)())
    .catch((e) => fail(e.message || String(e)));
})();
