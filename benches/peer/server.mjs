// node-oidc-provider serving the code flow the load benchmark drives through
// the bridge: authorize, a sign-in step, the redirect back with a code, the
// token endpoint (client_secret_basic, RS256 ID token), and refresh grants.
// The sign-in step stands where the bridge sends the person to Slack: it
// signs the benchmark's user in at once. Consent is already given (a grant
// is loaded), as the bridge's registered clients need none.
//
//   node server.mjs PORT
import http from 'node:http';
import * as jose from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
if (!port) {
  console.error('usage: node server.mjs PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const { privateKey } = await jose.generateKeyPair('RS256', { modulusLength: 2048, extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), alg: 'RS256', use: 'sig', kid: 'bench' };

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'bench',
    client_secret: 'bench-secret-0123456789abcdef0123456789abcdef',
    redirect_uris: ['http://127.0.0.1:9/cb'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  jwks: { keys: [jwk] },
  cookies: { keys: ['bench-cookie-key-0123456789abcdef'] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'given_name', 'family_name'] },
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => false },
  // Like the bridge's offline_access: a refresh token for a confidential client.
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({
      sub: id,
      email: 'ada@example.com',
      email_verified: true,
      name: 'Ada Lovelace',
      given_name: 'Ada',
      family_name: 'Lovelace',
    }),
  }),
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid email profile offline_access');
    await grant.save();
    return grant;
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});

const callback = provider.callback();
http.createServer(async (req, res) => {
  if (req.url.startsWith('/interaction/')) {
    try {
      const { prompt, params } = await provider.interactionDetails(req, res);
      let result = { login: { accountId: 'U0000000001' } };
      if (prompt.name === 'consent') {
        const grant = new provider.Grant({ clientId: params.client_id, accountId: 'U0000000001' });
        grant.addOIDCScope(params.scope);
        result = { consent: { grantId: await grant.save() } };
      }
      await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
    } catch (e) {
      res.statusCode = 400;
      res.end(String(e));
    }
    return;
  }
  callback(req, res);
}).listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
