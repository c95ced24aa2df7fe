//! The token endpoint (RFC 6749 §4.1.3, §5, §6; RFC 7636 §4.6; OIDC Core
//! §3.1.3 and §12).
//!
//! Every code redemption starts a token family; everything issued from it
//! (access tokens, each rotated refresh token) dies with the family. A
//! replayed code or a reused refresh token revokes its family.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::Provider;
use super::access_token;
use super::claims::{IdTokenRequest, Subject, sign_id_token};
use super::client_auth;
use super::clients::Client;
use super::dpop;
use super::error::{ErrorCode, OAuthError};
use super::grant::SEAL_UPSTREAM;
use super::params::{Params, is_form};
use super::policy::{self, Denied};

use super::session::now;
use crate::limits::Endpoint;
use crate::observability::metrics;
use crate::store::Namespace;
use crate::store::person::{Held, PersonEntry};
use crate::store::records::{
    AccessGrant, CodeGrant, Family, RefreshGrant, RefreshRecord, RotatedRefresh, UsedCode,
    random_secret,
};
use crate::store::seal;
use crate::upstream::{SlackIdentity, UpstreamTokens, s256};

const SEAL_SUCCESSOR: &str = "refresh-successor";

#[derive(Serialize, Deserialize)]
pub(crate) struct TokenResponse {
    access_token: String,
    token_type: String,
    expires_in: u64,
    scope: String,
    id_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

pub async fn token(
    req: HttpRequest,
    body: web::Bytes,
    provider: web::Data<Provider>,
) -> HttpResponse {
    if let Err(limited) = provider.limits.check_address(Endpoint::Token, &req) {
        return dpop::with_nonce(&provider, limited.json());
    }
    let answer = match handle(&req, &body, &provider).await {
        Ok(response) => response,
        Err(e) => {
            // A device polling while the person decides is no refusal worth
            // a log line at every poll.
            if matches!(
                e.code,
                ErrorCode::AuthorizationPending | ErrorCode::SlowDown
            ) {
                tracing::debug!(error = e.code.as_str(), "device code polled");
            } else {
                tracing::info!(error = e.code.as_str(), description = %e.description, "token request refused");
            }
            e.json()
        }
    };
    dpop::with_nonce(&provider, answer)
}

async fn handle(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
) -> Result<HttpResponse, OAuthError> {
    let (params, client) = match authenticated_client(req, body, provider, "token").await? {
        Ok(authenticated) => authenticated,
        Err(limited) => return Ok(limited),
    };
    let proof = check_dpop_proof(provider, req, &client)?;
    let response = match params.get("grant_type") {
        None => return Err(OAuthError::invalid_request("grant_type is missing")),
        Some("authorization_code") => {
            let response = authorization_code(provider, &client, &params, &proof).await?;
            metrics::token_issued("authorization_code");
            response
        }
        Some("refresh_token") if client.allows_refresh => {
            let response = refresh(provider, &client, &params, &proof).await?;
            metrics::token_issued("refresh_token");
            response
        }
        Some("refresh_token") => {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "this client is not registered for refresh tokens",
            ));
        }
        Some(crate::config::DEVICE_CODE_GRANT) => {
            let response =
                super::device::poll::device_code(provider, &client, &params, &proof).await?;
            metrics::token_issued("device_code");
            response
        }
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant type is not supported",
            ));
        }
    };
    Ok(no_store(HttpResponse::Ok()).json(response))
}

/// RFC 9449 §5: a token request may carry a DPoP proof, and must when the
/// client registered `dpop_bound_access_tokens`. Checked now, spent by the
/// grant once its code or token is known to be good.
fn check_dpop_proof(
    provider: &Provider,
    req: &HttpRequest,
    client: &Client,
) -> Result<dpop::TokenProof, OAuthError> {
    let proof = dpop::verify_request(provider, req, "token", None).map_err(|r| r.oauth())?;
    if proof.is_none() && client.dpop_required {
        crate::observability::metrics::dpop_proof("missing");
        return Err(OAuthError::invalid_request(
            "this client must send a DPoP proof (dpop_bound_access_tokens)",
        ));
    }
    Ok(dpop::TokenProof(proof))
}

fn no_store(mut builder: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    builder
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    builder
}

/// A back-channel request's form and the client it authenticates, counted
/// against that client's token-endpoint limit: after authentication, so
/// nobody can spend another client's budget. `Ok(Err(answer))`: over it.
/// `endpoint`: the path under the issuer (an assertion may name its URL).
pub(crate) async fn authenticated_client(
    req: &HttpRequest,
    body: &[u8],
    provider: &Provider,
    endpoint: &str,
) -> Result<Result<(Params, Arc<Client>), HttpResponse>, OAuthError> {
    let params = form_params(req, body)?;
    let client = client_auth::authenticate(provider, req, &params, endpoint).await?;
    if let Err(limited) = provider.limits.check_client(Endpoint::Token, &client.id) {
        return Ok(Err(limited.json()));
    }
    Ok(Ok((params, client)))
}

/// The body of a back-channel request: form-encoded, UTF-8, no repeats.
pub fn form_params(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthError> {
    let is_form = is_form(req);
    if !is_form {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the body is not valid UTF-8"))?;
    Params::parse(body)
}

async fn authorization_code(
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let code = params.require("code")?;
    let grant = consume_code(provider, code).await?;
    check_code_belongs_to_client(&grant, client)?;
    check_redirect_uri_matches(&grant, params)?;
    check_pkce_verifier(&grant, params)?;
    check_code_binding(&grant, proof.jkt())?;
    proof.spend(provider).await?;

    let redeemed = Redeemed {
        scopes: &grant.scopes,
        identity: &grant.identity,
        auth_time: grant.auth_time,
        nonce: grant.nonce.as_deref(),
        sid: grant.sid.as_deref(),
        issued_at_ms: grant.issued_at_ms,
    };
    let family_id = random_secret();
    let family = start_family(provider, client, &family_id, &redeemed).await?;
    // Remembered while the family's access tokens can live, so a replay can revoke it.
    let used = UsedCode {
        client_id: client.id.clone(),
        family_id: family_id.clone(),
    };
    if let Err(e) = provider
        .records
        .put_used_code(code, &used, provider.ttl_access_token())
        .await
    {
        tracing::warn!(error = %e, "could not record the redeemed code");
    }
    let upstream_token = grant
        .upstream_token
        .as_deref()
        .and_then(|sealed| seal::open(code, SEAL_UPSTREAM, sealed))
        .and_then(|t| String::from_utf8(t).ok());
    issue_first(
        provider,
        client,
        &family_id,
        &redeemed,
        &family,
        upstream_token.as_deref(),
        proof.jkt(),
    )
    .await
}

/// What a redeemed grant (an authorization code, or an approved device
/// code: `provider::device`) carries into the token family it starts.
pub(crate) struct Redeemed<'a> {
    pub scopes: &'a [String],
    pub identity: &'a SlackIdentity,
    pub auth_time: i64,
    pub nonce: Option<&'a str>,
    /// The SSO session's public id.
    pub sid: Option<&'a str>,
    /// When the grant was issued (Unix milliseconds).
    pub issued_at_ms: i64,
}

/// A token family [`start_family`] just started.
pub(crate) struct StartedFamily {
    expires_at: i64,
    created_at: i64,
    with_refresh: bool,
}

/// Starts the token family of a redeemed grant, named in its person's index
/// (so Slack or an admin can end it); refused when the person was signed
/// out everywhere after the grant was issued.
pub(crate) async fn start_family(
    provider: &Provider,
    client: &Client,
    family_id: &str,
    grant: &Redeemed<'_>,
) -> Result<StartedFamily, OAuthError> {
    let wants_refresh = client.allows_refresh && grant.scopes.iter().any(|s| s == "offline_access");
    let family_life = if wants_refresh {
        provider.config.tokens.refresh_token_absolute_secs
    } else {
        provider.config.tokens.access_token_ttl_secs
    };
    let family = Family {
        client_id: client.id.clone(),
        sub: grant.identity.subject(),
        expires_at: now() + family_life as i64,
    };
    let records = &provider.records;
    let entry = PersonEntry {
        held: Held::Family,
        client_id: Some(client.id.clone()),
        sid: grant.sid.map(str::to_string),
        created_at: now(),
        last_used_at: now(),
        expires_at: family.expires_at,
    };
    // Both or neither: a family its person's index does not name could not
    // be ended from Slack.
    let ((), signed_out_at) = tokio::try_join!(
        records.put(
            Namespace::Family,
            family_id,
            &family,
            Duration::from_secs(family_life),
        ),
        records.index_family(&family.sub, family_id, &entry),
    )
    .map_err(|e| OAuthError::unavailable(&e))?;
    if signed_out_at.is_some_and(|at| at >= grant.issued_at_ms) {
        tracing::warn!(client_id = %client.id, "code issued before its person was signed out everywhere");
        records
            .revoke_family(family_id)
            .await
            .map_err(|e| OAuthError::unavailable(&e))?;
        return Err(OAuthError::invalid_grant(
            "the person was signed out after this code was issued",
        ));
    }
    Ok(StartedFamily {
        expires_at: family.expires_at,
        created_at: entry.created_at,
        with_refresh: wants_refresh,
    })
}

/// The first tokens of a family [`start_family`] started: what a code
/// redemption answers (ID token, access token, and a refresh token when
/// `offline_access` was granted to a client registered for it).
pub(crate) async fn issue_first(
    provider: &Provider,
    client: &Client,
    family_id: &str,
    grant: &Redeemed<'_>,
    family: &StartedFamily,
    upstream_token: Option<&str>,
    jkt: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    issue(
        provider,
        client,
        Issue {
            scopes: grant.scopes,
            refresh_scopes: grant.scopes,
            identity: grant.identity,
            auth_time: grant.auth_time,
            nonce: grant.nonce,
            sid: grant.sid,
            family_id,
            family_expires_at: family.expires_at,
            family_created_at: Some(family.created_at),
            upstream_token,
            jkt,
            with_refresh: family.with_refresh,
            // The family was indexed just now, and Slack confirmed the
            // identity when the person signed in there: the first refreshes
            // within the TTL need not ask again.
            marks: Marks {
                checked_at: grant.auth_time,
                indexed_at: now(),
            },
        },
    )
    .await
}

/// The code is taken atomically: of two concurrent redemptions exactly one
/// succeeds. A replayed code revokes the family of its first redemption.
async fn consume_code(provider: &Provider, code: &str) -> Result<CodeGrant, OAuthError> {
    let records = &provider.records;
    if let Some(grant) = records
        .take_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        return Ok(grant);
    }
    if let Some(used) = records
        .take_used_code(code)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?
    {
        tracing::warn!(client_id = %used.client_id, "authorization code replayed; revoking its tokens");
        let _ = records.revoke_family(&used.family_id).await;
        return Err(OAuthError::invalid_grant("the code was already used"));
    }
    Err(OAuthError::invalid_grant("the code is invalid or expired"))
}

fn check_code_belongs_to_client(grant: &CodeGrant, client: &Client) -> Result<(), OAuthError> {
    if grant.client_id == client.id {
        Ok(())
    } else {
        Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ))
    }
}

/// RFC 6749 §4.1.3: the redirect URI presented at the authorization endpoint,
/// as the same exact string. For a native application's loopback redirect
/// URI (RFC 8252 §7.3) that includes the port it chose then: any port matches
/// the registration, but not another port than the one the code was sent to.
fn check_redirect_uri_matches(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match params.get("redirect_uri") {
        Some(uri) if uri == grant.redirect_uri => Ok(()),
        Some(_) => Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        )),
        None => Err(OAuthError::invalid_request("redirect_uri is required")),
    }
}

/// RFC 7636 §4.6, plus: a verifier with no challenge on the code is refused.
fn check_pkce_verifier(grant: &CodeGrant, params: &Params) -> Result<(), OAuthError> {
    match (&grant.code_challenge, params.get("code_verifier")) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier sent but the authorization request had no code_challenge",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant("code_verifier is required")),
        (Some(challenge), Some(verifier)) => {
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            if well_formed && bool::from(s256(verifier).as_bytes().ct_eq(challenge.as_bytes())) {
                Ok(())
            } else {
                Err(OAuthError::invalid_grant(
                    "code_verifier does not match the code_challenge",
                ))
            }
        }
    }
}

/// RFC 9449 §10: a code bound to a DPoP key is redeemed only with a proof
/// by that key.
fn check_code_binding(grant: &CodeGrant, jkt: Option<&str>) -> Result<(), OAuthError> {
    match (&grant.dpop_jkt, jkt) {
        (Some(bound), presented) if presented != Some(bound.as_str()) => Err(
            OAuthError::invalid_grant("the code is bound to another DPoP key (dpop_jkt)"),
        ),
        _ => Ok(()),
    }
}

/// The refresh grant with rotation: the presented token is swapped for a
/// tombstone atomically, so of two concurrent uses exactly one wins and the
/// other is seen as reuse.
async fn refresh(
    provider: &Provider,
    client: &Client,
    params: &Params,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let token = params.require("refresh_token")?;
    let jkt = proof.jkt();
    let records = &provider.records;
    let unavailable = |e| OAuthError::unavailable(&e);
    let record: Option<RefreshRecord> = records
        .get(Namespace::RefreshToken, token)
        .await
        .map_err(unavailable)?;
    let grant = match record {
        None => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
        Some(r) if r.client_id() != client.id => {
            // Nothing of the owner's is touched.
            return Err(OAuthError::invalid_grant(
                "the refresh token was issued to another client",
            ));
        }
        Some(RefreshRecord::Rotated(rotated)) => {
            return reuse(provider, client, token, rotated, proof).await;
        }
        Some(RefreshRecord::Live(grant)) => grant,
    };
    if provider.keys.current().is_revoked(&grant.kid) {
        return Err(OAuthError::invalid_grant(
            "the refresh token was issued under a revoked key",
        ));
    }
    // Checked before the token is spent: a bad request, or Slack not
    // answering, must not burn it.
    check_refresh_binding(&grant, jkt)?;
    proof.spend(provider).await?;
    let scopes = narrowed_scopes(params, &grant.scopes)?;
    let upstream = grant
        .upstream_token
        .as_deref()
        .and_then(|sealed| seal::open(token, SEAL_UPSTREAM, sealed))
        .and_then(|t| String::from_utf8(t).ok())
        .map(|t| UpstreamTokens::from_text(&t));
    // Round trips (store, Slack) that do not depend on each other.
    let (alive, checked) = tokio::join!(
        records.family_alive(&grant.family_id),
        checked_identity(provider, client, &grant, upstream),
    );
    if !alive.map_err(unavailable)? {
        return Err(OAuthError::invalid_grant("the refresh token was revoked"));
    }
    let (identity, checked_at, upstream) = match checked {
        Ok(checked) => checked,
        Err(denied) => {
            if denied.is_no() {
                tracing::warn!(client_id = %client.id, reason = ?denied, "Slack says no: ending the token family");
                records
                    .revoke_family(&grant.family_id)
                    .await
                    .map_err(unavailable)?;
            }
            return Err(denied.at_refresh());
        }
    };
    let marks = Marks {
        checked_at,
        // "Last used" to the minute: not every refresh writes the index.
        indexed_at: if now() - grant.indexed_at < INDEX_EVERY_SECS {
            grant.indexed_at
        } else {
            now()
        },
    };
    let tombstone = RotatedRefresh {
        client_id: client.id.clone(),
        family_id: grant.family_id.clone(),
        rotated_at: now(),
        successor: None,
    };
    let tombstone_ttl = refresh_ttl(provider, grant.family_expires_at);
    let previous: Option<RefreshRecord> = records
        .swap(
            Namespace::RefreshToken,
            token,
            &RefreshRecord::Rotated(tombstone.clone()),
            tombstone_ttl,
        )
        .await
        .map_err(unavailable)?;
    match previous {
        Some(RefreshRecord::Live(_)) => {}
        Some(RefreshRecord::Rotated(raced)) => {
            let _ = records
                .put(
                    Namespace::RefreshToken,
                    token,
                    &RefreshRecord::Rotated(raced.clone()),
                    tombstone_ttl,
                )
                .await;
            return reuse(provider, client, token, raced, proof).await;
        }
        None => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
    }
    let upstream_text = upstream.as_ref().map(UpstreamTokens::to_text);
    let entry = PersonEntry {
        held: Held::Family,
        client_id: Some(client.id.clone()),
        sid: grant.sid.clone(),
        created_at: grant.family_created_at.unwrap_or(grant.issued_at),
        last_used_at: now(),
        expires_at: grant.family_expires_at,
    };
    let subject = identity.subject();
    let index_now = marks.indexed_at != grant.indexed_at;
    let (response, indexed) = tokio::join!(
        issue(
            provider,
            client,
            Issue {
                scopes: &scopes,
                refresh_scopes: &grant.scopes,
                identity: &identity,
                auth_time: grant.auth_time,
                nonce: None,
                sid: grant.sid.as_deref(),
                family_id: &grant.family_id,
                family_expires_at: grant.family_expires_at,
                family_created_at: grant.family_created_at,
                upstream_token: upstream_text.as_deref(),
                jkt,
                with_refresh: true,
                marks,
            },
        ),
        // When the family was last used, for `sessions list`.
        async {
            if index_now {
                records
                    .index_family(&subject, &grant.family_id, &entry)
                    .await
            } else {
                Ok(None)
            }
        },
    );
    let response = response?;
    if let Err(e) = indexed {
        tracing::warn!(error = %e, "could not record the family's use");
    }
    // The successor is only ever read back within the reuse grace window
    // (`reuse`); without one, the tombstone the swap wrote is all there is.
    if provider.config.tokens.refresh_reuse_grace_secs == 0 {
        return Ok(response);
    }
    let sealed = seal::seal(
        token,
        SEAL_SUCCESSOR,
        &serde_json::to_vec(&response).expect("serializes"),
    );
    let tombstone = RotatedRefresh {
        successor: Some(sealed),
        ..tombstone
    };
    if let Err(e) = records
        .put(
            Namespace::RefreshToken,
            token,
            &RefreshRecord::Rotated(tombstone),
            tombstone_ttl,
        )
        .await
    {
        tracing::warn!(error = %e, "could not record the refresh successor");
    }
    Ok(response)
}

/// A rotated refresh token came back. Within the grace window the client
/// gets the same successor (it lost the response); otherwise it is theft and
/// the whole family is revoked.
async fn reuse(
    provider: &Provider,
    client: &Client,
    token: &str,
    rotated: RotatedRefresh,
    proof: &dpop::TokenProof,
) -> Result<TokenResponse, OAuthError> {
    let grace = provider.config.tokens.refresh_reuse_grace_secs as i64;
    let records = &provider.records;
    if grace > 0
        && now() - rotated.rotated_at <= grace
        && records
            .family_alive(&rotated.family_id)
            .await
            .unwrap_or(false)
    {
        let same = rotated
            .successor
            .as_deref()
            .and_then(|s| seal::open(token, SEAL_SUCCESSOR, s))
            .and_then(|bytes| serde_json::from_slice::<TokenResponse>(&bytes).ok());
        if let Some(response) = same
            && retry_fits_binding(provider, client, &response, proof.jkt()).await
        {
            proof.spend(provider).await?;
            tracing::info!(client_id = %rotated.client_id, "refresh token retried within the grace window");
            return Ok(response);
        }
    }
    tracing::warn!(client_id = %rotated.client_id, "rotated refresh token reused: revoking its whole family");
    records
        .revoke_family(&rotated.family_id)
        .await
        .map_err(|e| OAuthError::unavailable(&e))?;
    Err(OAuthError::invalid_grant(
        "the refresh token was already used",
    ))
}

/// RFC 9449 §5: a public client's retry gets its bound answer again only
/// with a proof by the key it is bound to (the rotated token's); any other
/// presentation of the rotated token is a reuse.
async fn retry_fits_binding(
    provider: &Provider,
    client: &Client,
    response: &TokenResponse,
    jkt: Option<&str>,
) -> bool {
    if !client.is_public() || response.token_type != "DPoP" {
        return true;
    }
    match provider
        .records
        .get_access_token(&response.access_token)
        .await
    {
        Ok(Some(access)) => access.jkt.is_some() && access.jkt.as_deref() == jkt,
        _ => false,
    }
}

/// RFC 6749 §6: a refresh may ask for fewer scopes, never more.
fn narrowed_scopes(params: &Params, granted: &[String]) -> Result<Vec<String>, OAuthError> {
    let Some(requested) = params.get("scope") else {
        return Ok(granted.to_vec());
    };
    let requested: Vec<String> = requested
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if requested.iter().any(|s| !granted.contains(s)) {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "a refresh cannot add scopes",
        ));
    }
    if !requested.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "scope must contain openid",
        ));
    }
    Ok(requested)
}

/// What Slack now says about the person, within the directory's budget:
/// their profile through their own Slack token (renewed when Slack's token
/// rotation says so), then the application's policy. Returns the identity
/// to mint with, when Slack's userInfo gave the answer it rests on, and
/// Slack's tokens to keep.
async fn checked_identity(
    provider: &Provider,
    client: &Client,
    grant: &RefreshGrant,
    upstream: Option<UpstreamTokens>,
) -> Result<(SlackIdentity, i64, Option<UpstreamTokens>), Denied> {
    let kept = upstream.clone();
    // Slack's userInfo confirmed this family's identity within the TTL: the
    // per-person answer need not even be read. Standing and groups always
    // are (an event may have changed them).
    let ttl = provider.config.upstream.directory_ttl_secs as i64;
    let (identity, checked_at, renewed) = if now() - grant.checked_at < ttl {
        (grant.identity.clone(), grant.checked_at, None)
    } else {
        provider
            .directory
            .userinfo(&grant.identity, grant.checked_at, upstream)
            .await?
    };
    let identity = policy::admit(provider, client, &identity, &grant.scopes).await?;
    Ok((identity, checked_at, renewed.or(kept)))
}

/// RFC 9449 §5: a refresh token bound to a key (a public client's, issued
/// with a proof) is only good with a proof by that key.
fn check_refresh_binding(grant: &RefreshGrant, jkt: Option<&str>) -> Result<(), OAuthError> {
    match (&grant.jkt, jkt) {
        (Some(bound), Some(presented)) if bound == presented => Ok(()),
        (Some(_), Some(_)) => Err(OAuthError::invalid_grant(
            "the refresh token is bound to another DPoP key",
        )),
        (Some(_), None) => Err(OAuthError::invalid_grant(
            "the refresh token is DPoP-bound: send a proof by its key",
        )),
        (None, _) => Ok(()),
    }
}

fn refresh_ttl(provider: &Provider, family_expires_at: i64) -> Duration {
    let left = (family_expires_at - now()).max(1) as u64;
    Duration::from_secs(provider.config.tokens.refresh_token_idle_secs.min(left))
}

/// How often a refresh writes its family's use to the person's index.
const INDEX_EVERY_SECS: i64 = 60;

/// When a refresh grant's identity was last checked with Slack and its use
/// last indexed; carried from one refresh token to its successor.
#[derive(Clone, Copy, Default)]
pub(crate) struct Marks {
    checked_at: i64,
    indexed_at: i64,
}

struct Issue<'a> {
    scopes: &'a [String],
    /// Scope of the refresh token (unchanged by a narrower refresh, RFC 6749 §6).
    refresh_scopes: &'a [String],
    identity: &'a SlackIdentity,
    auth_time: i64,
    nonce: Option<&'a str>,
    sid: Option<&'a str>,
    family_id: &'a str,
    family_expires_at: i64,
    family_created_at: Option<i64>,
    upstream_token: Option<&'a str>,
    /// The thumbprint of the DPoP key the tokens are bound to (RFC 9449).
    jkt: Option<&'a str>,
    with_refresh: bool,
    marks: Marks,
}

async fn issue(
    provider: &Provider,
    client: &Client,
    issue: Issue<'_>,
) -> Result<TokenResponse, OAuthError> {
    let keys = provider.keys.current();
    let alg = provider.config.id_token_alg(&client.id);
    let key = keys.signer_for(alg).ok_or_else(|| {
        tracing::error!(%alg, "no active signing key for the client's algorithm");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let ttl = provider.ttl_access_token();
    let issued_at = now();
    let subject = client.subject(issue.identity);
    let access_token = if client.jwt_access_tokens {
        access_token::sign(
            key,
            &access_token::AccessTokenClaims {
                issuer: &provider.issuer,
                client_id: &client.id,
                subject: &subject,
                scopes: issue.scopes,
                issued_at,
                expires_at: issued_at + ttl.as_secs() as i64,
                jkt: issue.jkt,
            },
        )
        .map_err(|e| {
            tracing::error!(error = %e, "access token signing failed");
            OAuthError::new(
                ErrorCode::ServerError,
                "the access token could not be signed",
            )
        })?
    } else {
        random_secret()
    };
    let id_token = sign_id_token(
        key,
        issue.identity,
        &IdTokenRequest {
            issuer: &provider.issuer_url,
            client_id: &client.id,
            subject: Subject {
                sub: &subject,
                pairwise: client.pairwise.is_some(),
            },
            scopes: issue.scopes,
            nonce: issue.nonce,
            auth_time: issue.auth_time,
            access_token: &access_token,
            lifetime_secs: provider.config.tokens.id_token_ttl_secs,
            sid: issue
                .sid
                .filter(|_| client.backchannel_logout_session_required),
        },
    )
    .map_err(|e| {
        tracing::error!(error = %e, "ID token signing failed");
        OAuthError::new(ErrorCode::ServerError, "the ID token could not be signed")
    })?;
    let access = AccessGrant {
        client_id: client.id.clone(),
        scopes: issue.scopes.to_vec(),
        identity: issue.identity.clone(),
        expires_at: issued_at + ttl.as_secs() as i64,
        issued_at,
        family_id: issue.family_id.to_string(),
        kid: key.kid().to_string(),
        jkt: issue.jkt.map(str::to_string),
    };
    let records = &provider.records;
    let refresh = issue.with_refresh.then(|| {
        let token = random_secret();
        let grant = RefreshGrant {
            client_id: client.id.clone(),
            scopes: issue.refresh_scopes.to_vec(),
            identity: issue.identity.clone(),
            auth_time: issue.auth_time,
            family_id: issue.family_id.to_string(),
            family_expires_at: issue.family_expires_at,
            family_created_at: issue.family_created_at,
            sid: issue.sid.map(str::to_string),
            issued_at,
            kid: key.kid().to_string(),
            upstream_token: issue
                .upstream_token
                .map(|t| seal::seal(&token, SEAL_UPSTREAM, t.as_bytes())),
            checked_at: issue.marks.checked_at,
            indexed_at: issue.marks.indexed_at,
            // A confidential client's refresh token is bound by its client
            // authentication already (RFC 9449 §5).
            jkt: issue.jkt.filter(|_| client.is_public()).map(str::to_string),
        };
        (token, RefreshRecord::Live(Box::new(grant)))
    });
    // Two independent writes, sent together. Should one fail, the other
    // token is never handed out and expires unused.
    let put_refresh = async {
        match &refresh {
            Some((token, record)) => {
                records
                    .put(
                        Namespace::RefreshToken,
                        token,
                        record,
                        refresh_ttl(provider, issue.family_expires_at),
                    )
                    .await
            }
            None => Ok(()),
        }
    };
    tokio::try_join!(
        records.put_access_token(&access_token, &access, ttl),
        put_refresh
    )
    .map_err(|e| OAuthError::unavailable(&e))?;
    let refresh_token = refresh.map(|(token, _)| token);
    Ok(TokenResponse {
        access_token,
        token_type: if issue.jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
        .into(),
        expires_in: ttl.as_secs(),
        scope: issue.scopes.join(" "),
        id_token,
        refresh_token,
    })
}
