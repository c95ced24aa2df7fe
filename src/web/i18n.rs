//! The languages of our pages (English and French) and their message catalog.
//!
//! A page's language is chosen from the `ui_locales` parameter (OIDC Core
//! §3.1.2.1: space-separated language tags in order of preference), then the
//! browser's `Accept-Language`, then English. Each language is one value of
//! [`Messages`]: a struct rather than a map, so a string missing from one
//! language does not compile.
//!
//! Error pages also show texts that come from deep in the code in English
//! (`OAuthError` descriptions, page titles): [`translate`] maps the ones a
//! person can meet on a page to plain English and to French. One it does not
//! know is never shown in English on a French page: the page falls back to a
//! sentence chosen by the OAuth error code ([`explain`]).

use actix_web::HttpRequest;
use actix_web::http::header::ACCEPT_LANGUAGE;
use serde::Serialize;

/// A language our pages are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Locale {
    #[default]
    En,
    Fr,
}

/// At most this many entries of `ui_locales` or `Accept-Language` are looked
/// at: both come from the request.
const MAX_TAGS: usize = 20;

impl Locale {
    /// The value of the `lang` attribute.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Fr => "fr",
        }
    }

    /// A language tag's primary subtag, if it is one of ours (`fr-CA` → Fr).
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let primary = tag.trim().split(['-', '_']).next()?;
        if primary.eq_ignore_ascii_case("en") {
            Some(Locale::En)
        } else if primary.eq_ignore_ascii_case("fr") {
            Some(Locale::Fr)
        } else {
            None
        }
    }

    /// The first of the `ui_locales` tags that we speak.
    pub fn from_ui_locales(ui_locales: &str) -> Option<Locale> {
        ui_locales
            .split(' ')
            .filter(|t| !t.is_empty())
            .take(MAX_TAGS)
            .find_map(Locale::from_tag)
    }

    /// The language of ours the browser prefers most (RFC 9110 §12.5.4):
    /// highest `q` first, the earlier entry on a tie; `q=0` means "not this".
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        let mut best: Option<(u16, Locale)> = None;
        for entry in header.split(',').take(MAX_TAGS) {
            let mut parts = entry.split(';');
            let Some(locale) = parts.next().and_then(Locale::from_tag) else {
                continue;
            };
            let mut q = 1000;
            for p in parts {
                if let Some(v) = p.trim().strip_prefix("q=").or(p.trim().strip_prefix("Q=")) {
                    q = parse_qvalue(v).unwrap_or(0);
                }
            }
            if q > 0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, locale));
            }
        }
        best.map(|(_, l)| l)
    }

    /// `ui_locales` first (when it names a language of ours), then
    /// `Accept-Language`, then English.
    pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> Locale {
        ui_locales
            .and_then(Locale::from_ui_locales)
            .or_else(|| accept_language.and_then(Locale::from_accept_language))
            .unwrap_or_default()
    }

    /// The language for a page answering `req`; `chosen` is what the
    /// application asked for with `ui_locales` (now, or when the sign-in began).
    pub fn for_request(req: &HttpRequest, chosen: Option<&str>) -> Locale {
        let accept = req
            .headers()
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Locale::negotiate(chosen, accept)
    }

    pub fn messages(self) -> &'static Messages {
        match self {
            Locale::En => &EN,
            Locale::Fr => &FR,
        }
    }
}

/// `0`, `0.5`, `1`, `1.000` (at most three decimals) as thousandths.
fn parse_qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Every string of every page, in one language. `{app}` and `{user}` are
/// replaced in the templates (after which tera escapes the whole text).
#[derive(Debug, Serialize)]
pub struct Messages {
    pub footer: &'static str,

    pub error_code: &'static str,
    pub error_reference: &'static str,
    pub error_hint: &'static str,
    pub error_back: &'static str,

    pub login_title: &'static str,
    pub login_heading: &'static str,
    pub login_intro: &'static str,
    pub login_button: &'static str,
    pub login_hint: &'static str,

    pub consent_title: &'static str,
    pub consent_account: &'static str,
    pub consent_asks: &'static str,
    pub consent_allow: &'static str,
    pub consent_deny: &'static str,
    pub scope_openid: &'static str,
    pub scope_email: &'static str,
    pub scope_profile: &'static str,
    pub scope_offline_access: &'static str,
    pub scope_groups: &'static str,

    pub logout_title: &'static str,
    pub logout_body: &'static str,
    pub logout_button: &'static str,
    pub logged_out_title: &'static str,
    pub logged_out_heading: &'static str,
    pub logged_out_body: &'static str,

    pub device_title: &'static str,
    pub device_intro: &'static str,
    pub device_code_label: &'static str,
    pub device_continue: &'static str,
    pub device_hint: &'static str,
    pub device_wrong: &'static str,
    pub device_expired: &'static str,
    pub device_locked: &'static str,
    pub device_too_many: &'static str,
    pub device_confirm_title: &'static str,
    pub device_confirm_code: &'static str,
    pub device_confirm_warning: &'static str,
    pub device_approve: &'static str,
    pub device_deny: &'static str,
    pub device_switch: &'static str,
    pub device_approved_title: &'static str,
    pub device_approved_body: &'static str,
    pub device_denied_title: &'static str,
    pub device_denied_body: &'static str,

    pub standin_badge: &'static str,
    pub standin_title: &'static str,
    pub standin_app: &'static str,
    pub standin_pick: &'static str,
    pub standin_cancel: &'static str,
    pub standin_no_email: &'static str,
    pub standin_footer: &'static str,
}

pub static EN: Messages = Messages {
    footer: "Sign-in service for applications that use Slack accounts.",

    error_code: "Error code",
    error_reference: "Reference",
    error_hint: "If this keeps happening, give the reference to whoever runs this service.",
    error_back: "Back to {app}",

    login_title: "Sign in",
    login_heading: "Sign in to {app}",
    login_intro: "{app} uses your Slack account to sign you in.",
    login_button: "Sign in with Slack",
    login_hint: "Slack may ask you to confirm, then brings you back to {app}.",

    consent_title: "Allow {app}?",
    consent_account: "Slack account: {user}",
    consent_asks: "{app} asks to:",
    consent_allow: "Allow",
    consent_deny: "Cancel",
    scope_openid: "Know who you are on Slack",
    scope_email: "See your email address",
    scope_profile: "See your name, picture and workspace",
    scope_offline_access: "Keep access when you are not using it",
    scope_groups: "See your Slack user groups",

    logout_title: "Sign out?",
    logout_body: "You will be signed out of this sign-in service. Applications you use may keep you signed in until you sign out of them too.",
    logout_button: "Sign out",
    logged_out_title: "Signed out",
    logged_out_heading: "You are signed out",
    logged_out_body: "You can close this window.",

    device_title: "Sign in on a device",
    device_intro: "Enter the code your device shows.",
    device_code_label: "Code shown on your device",
    device_continue: "Continue",
    device_hint: "The code is eight letters, like BCDF-GHJK. Enter only a code shown by a device in front of you.",
    device_wrong: "This code is not valid. Check it on your device and try again.",
    device_expired: "This code has expired or was already used. Start again on your device to get a new one.",
    device_locked: "This code was entered too many times and no longer works. Start again on your device to get a new one.",
    device_too_many: "Too many wrong codes from your network. Wait {seconds} seconds, then try again.",
    device_confirm_title: "Sign in to {app} on your device?",
    device_confirm_code: "Check that your device shows this code:",
    device_confirm_warning: "Approve only if you started this sign-in yourself, on a device in front of you. Never approve a code someone sent you.",
    device_approve: "Approve",
    device_deny: "Deny",
    device_switch: "Use another Slack account",
    device_approved_title: "Your device is signed in",
    device_approved_body: "{app} is signed in with your Slack account. You may return to your device.",
    device_denied_title: "Sign-in denied",
    device_denied_body: "{app} was not signed in. You can close this window.",

    standin_badge: "Slack stand-in",
    standin_title: "Sign in with Slack",
    standin_app: "Slack app {app} asks who you are.",
    standin_pick: "Pick a test user",
    standin_cancel: "Cancel",
    standin_no_email: "(no email)",
    standin_footer: "Slack stand-in for local development. Not Slack.",
};

pub static FR: Messages = Messages {
    footer: "Service de connexion pour les applications qui utilisent les comptes Slack.",

    error_code: "Code d’erreur",
    error_reference: "Référence",
    error_hint: "Si le problème persiste, communiquez cette référence à la personne qui gère ce service.",
    error_back: "Retour à {app}",

    login_title: "Connexion",
    login_heading: "Connexion à {app}",
    login_intro: "{app} utilise votre compte Slack pour vous identifier.",
    login_button: "Se connecter avec Slack",
    login_hint: "Slack vous demandera peut-être de confirmer, puis vous ramènera à {app}.",

    consent_title: "Autoriser {app}\u{a0}?",
    consent_account: "Compte Slack\u{a0}: {user}",
    consent_asks: "{app} demande à\u{a0}:",
    consent_allow: "Autoriser",
    consent_deny: "Annuler",
    scope_openid: "Savoir qui vous êtes sur Slack",
    scope_email: "Voir votre adresse e-mail",
    scope_profile: "Voir votre nom, votre photo et votre espace de travail",
    scope_offline_access: "Garder l’accès quand vous ne l’utilisez pas",
    scope_groups: "Voir vos groupes d’utilisateurs Slack",

    logout_title: "Se déconnecter\u{a0}?",
    logout_body: "Votre session sur ce service de connexion va prendre fin. Les applications que vous utilisez peuvent garder la leur ouverte jusqu’à ce que vous vous en déconnectiez aussi.",
    logout_button: "Se déconnecter",
    logged_out_title: "Déconnexion effectuée",
    logged_out_heading: "Votre session est terminée",
    logged_out_body: "Vous pouvez fermer cette fenêtre.",

    device_title: "Connexion sur un appareil",
    device_intro: "Saisissez le code affiché par votre appareil.",
    device_code_label: "Code affiché sur votre appareil",
    device_continue: "Continuer",
    device_hint: "Le code compte huit lettres, par exemple BCDF-GHJK. Ne saisissez que le code d’un appareil qui est devant vous.",
    device_wrong: "Ce code n’est pas valide. Vérifiez-le sur votre appareil et réessayez.",
    device_expired: "Ce code a expiré ou a déjà servi. Recommencez sur votre appareil pour en obtenir un nouveau.",
    device_locked: "Ce code a été saisi trop de fois et ne fonctionne plus. Recommencez sur votre appareil pour en obtenir un nouveau.",
    device_too_many: "Trop de codes erronés depuis votre réseau. Patientez {seconds}\u{a0}secondes, puis réessayez.",
    device_confirm_title: "Connecter {app} sur votre appareil\u{a0}?",
    device_confirm_code: "Vérifiez que votre appareil affiche ce code\u{a0}:",
    device_confirm_warning: "N’approuvez que si vous avez lancé vous-même cette connexion, sur un appareil qui est devant vous. N’approuvez jamais un code que quelqu’un vous a envoyé.",
    device_approve: "Approuver",
    device_deny: "Refuser",
    device_switch: "Utiliser un autre compte Slack",
    device_approved_title: "Votre appareil est connecté",
    device_approved_body: "{app} est connecté avec votre compte Slack. Vous pouvez retourner sur votre appareil.",
    device_denied_title: "Connexion refusée",
    device_denied_body: "{app} n’a pas été connecté. Vous pouvez fermer cette fenêtre.",

    standin_badge: "Imitation de Slack",
    standin_title: "Se connecter avec Slack",
    standin_app: "L’application Slack {app} demande qui vous êtes.",
    standin_pick: "Choisissez un utilisateur de test",
    standin_cancel: "Annuler",
    standin_no_email: "(pas d’adresse e-mail)",
    standin_footer: "Imitation de Slack pour le développement local. Ce n’est pas Slack.",
};

/// A scope as the consent page describes it.
pub fn scope_text(locale: Locale, scope: &str) -> Option<&'static str> {
    let m = locale.messages();
    match scope {
        "openid" => Some(m.scope_openid),
        "email" => Some(m.scope_email),
        "profile" => Some(m.scope_profile),
        "offline_access" => Some(m.scope_offline_access),
        "groups" => Some(m.scope_groups),
        _ => None,
    }
}

/// Texts that reach a page from elsewhere in the code, in English (titles
/// given to `Provider::error_page`, descriptions of the errors those pages
/// show), with what the page says instead: plain English, and French. `{}`
/// stands for a parameter name.
const CATALOG: &[(&str, &str, &str)] = &[
    // Titles.
    (
        "This sign-in link is not valid",
        "This sign-in link is not valid",
        "Ce lien de connexion n’est pas valide",
    ),
    (
        "The sign-in request is malformed",
        "The sign-in request is malformed",
        "La demande de connexion est mal formée",
    ),
    (
        "This consent cannot be recorded",
        "Your answer cannot be recorded",
        "Votre réponse ne peut pas être enregistrée",
    ),
    (
        "This sign-out link is not valid",
        "This sign-out link is not valid",
        "Ce lien de déconnexion n’est pas valide",
    ),
    (
        "Sign-out is unavailable right now",
        "Sign-out is unavailable right now",
        "La déconnexion est momentanément indisponible",
    ),
    (
        "This sign-out cannot be completed",
        "This sign-out cannot be completed",
        "La déconnexion ne peut pas aboutir",
    ),
    (
        "This sign-in cannot be completed",
        "This sign-in cannot be completed",
        "Cette connexion ne peut pas aboutir",
    ),
    (
        "Sign-in is unavailable right now",
        "Sign-in is unavailable right now",
        "La connexion est momentanément indisponible",
    ),
    // What went wrong.
    (
        "client_id is missing",
        "The link does not say which application it comes from (client_id is missing).",
        "Le lien ne dit pas de quelle application il vient (client_id absent).",
    ),
    (
        "redirect_uri is missing",
        "The link does not say where to go back afterwards (redirect_uri is missing).",
        "Le lien ne dit pas où revenir ensuite (redirect_uri absent).",
    ),
    (
        "this application is not registered here",
        "The application that sent you here is not registered with this service.",
        "L’application d’où vous venez n’est pas enregistrée auprès de ce service.",
    ),
    (
        "redirect_uri is not registered for this application",
        "The address to go back to (redirect_uri) is not registered for this application.",
        "L’adresse de retour (redirect_uri) n’est pas enregistrée pour cette application.",
    ),
    (
        "{} is repeated",
        "The parameter {} appears more than once.",
        "Le paramètre {} apparaît plusieurs fois.",
    ),
    (
        "parameter {} is repeated",
        "The parameter {} appears more than once.",
        "Le paramètre {} apparaît plusieurs fois.",
    ),
    (
        "parameter {} is too long",
        "The parameter {} is too long.",
        "Le paramètre {} est trop long.",
    ),
    (
        "{} is required",
        "The parameter {} is missing.",
        "Le paramètre {} est absent.",
    ),
    (
        "too many parameters",
        "The request has too many parameters.",
        "La demande contient trop de paramètres.",
    ),
    (
        "a parameter is not valid UTF-8",
        "A parameter contains unreadable characters (not valid UTF-8).",
        "Un paramètre contient des caractères illisibles (UTF-8 non valide).",
    ),
    (
        "the request must be application/x-www-form-urlencoded",
        "The request must be sent as a form (application/x-www-form-urlencoded).",
        "La demande doit être envoyée comme un formulaire (application/x-www-form-urlencoded).",
    ),
    (
        "the request body is not valid UTF-8",
        "The request contains unreadable characters (not valid UTF-8).",
        "La demande contient des caractères illisibles (UTF-8 non valide).",
    ),
    (
        "the body must be application/x-www-form-urlencoded",
        "The request must be sent as a form (application/x-www-form-urlencoded).",
        "La demande doit être envoyée comme un formulaire (application/x-www-form-urlencoded).",
    ),
    (
        "the body is not valid UTF-8",
        "The request contains unreadable characters (not valid UTF-8).",
        "La demande contient des caractères illisibles (UTF-8 non valide).",
    ),
    (
        "the form is incomplete",
        "The form is incomplete.",
        "Le formulaire est incomplet.",
    ),
    (
        "this page has expired or was already answered; start again",
        "This page has expired or was already answered. Please start again.",
        "Cette page a expiré ou a déjà reçu une réponse. Veuillez recommencer.",
    ),
    (
        "this page was opened in another browser; start again",
        "This page was opened in another browser. Please start again.",
        "Cette page a été ouverte dans un autre navigateur. Veuillez recommencer.",
    ),
    (
        "this page has expired; sign out again",
        "This page has expired. Please sign out again.",
        "Cette page a expiré. Veuillez recommencer la déconnexion.",
    ),
    (
        "this page was opened in another browser",
        "This page was opened in another browser.",
        "Cette page a été ouverte dans un autre navigateur.",
    ),
    (
        "Slack sent no state",
        "Slack came back without the expected state parameter.",
        "Slack est revenu sans le paramètre state attendu.",
    ),
    (
        "this sign-in has expired or was already completed; start again",
        "This sign-in has expired or was already completed. Please start again from the application.",
        "Cette connexion a expiré ou a déjà abouti. Veuillez recommencer depuis l’application.",
    ),
    (
        "this sign-in link is not valid; start again",
        "This sign-in link is not valid (it may have been altered). Please start again from the application.",
        "Ce lien de connexion n’est pas valide (il a peut-être été modifié). Veuillez recommencer depuis l’application.",
    ),
    (
        "this sign-in began before a key change; start again",
        "This sign-in began before a security key change. Please start again from the application.",
        "Cette connexion a commencé avant un changement de clé de sécurité. Veuillez recommencer depuis l’application.",
    ),
    (
        "this sign-in was started in another browser (or cookies are blocked); start again",
        "This sign-in was started in another browser, or this browser blocks cookies. Please start again from the application.",
        "Cette connexion a été commencée dans un autre navigateur, ou ce navigateur bloque les cookies. Veuillez recommencer depuis l’application.",
    ),
    (
        "This device sign-in cannot be completed",
        "This device sign-in cannot be completed",
        "La connexion de l’appareil ne peut pas aboutir",
    ),
    (
        "this code was already used or has expired; start again on your device",
        "This code was already used or has expired. Please start again on your device.",
        "Ce code a déjà servi ou a expiré. Veuillez recommencer sur votre appareil.",
    ),
    (
        "the session ended during sign-in; sign in again",
        "Your session ended during the sign-in. Please sign in again.",
        "Votre session a pris fin pendant la connexion. Veuillez vous reconnecter.",
    ),
    (
        "the application is no longer registered",
        "The application is no longer registered with this service.",
        "L’application n’est plus enregistrée auprès de ce service.",
    ),
    (
        "The session store is unavailable; try again shortly",
        "Our session storage is not answering.",
        "Notre stockage des sessions ne répond pas.",
    ),
];

/// What a page says for `english` in `locale`, when the catalog knows it.
pub fn translate(locale: Locale, english: &str) -> Option<String> {
    for (key, en, fr) in CATALOG {
        let text = match locale {
            Locale::En => en,
            Locale::Fr => fr,
        };
        match key.split_once("{}") {
            None if *key == english => return Some(text.to_string()),
            None => {}
            Some((before, after)) => {
                let name = english
                    .strip_prefix(before)
                    .and_then(|rest| rest.strip_suffix(after));
                if let Some(name) = name.filter(|n| is_parameter_name(n)) {
                    return Some(text.replace("{}", name));
                }
            }
        }
    }
    None
}

fn is_parameter_name(s: &str) -> bool {
    (1..=40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A title for an error page whose own title the catalog does not know.
pub fn fallback_title(locale: Locale) -> &'static str {
    match locale {
        Locale::En => "Something went wrong",
        Locale::Fr => "Un problème est survenu",
    }
}

/// What an OAuth error code means, in plain words: shown when the error's own
/// description has no translation.
pub fn explain(locale: Locale, code: &str) -> &'static str {
    match (locale, code) {
        (Locale::En, "temporarily_unavailable") => {
            "This service cannot finish your request right now."
        }
        (Locale::Fr, "temporarily_unavailable") => {
            "Ce service ne peut pas traiter votre demande pour le moment."
        }
        (Locale::En, "access_denied") => "The sign-in was refused.",
        (Locale::Fr, "access_denied") => "La connexion a été refusée.",
        (Locale::En, "server_error") => "Something failed on our side.",
        (Locale::Fr, "server_error") => "Une erreur s’est produite de notre côté.",
        (Locale::En, "invalid_client") => {
            "The application that sent you here is not known to this service."
        }
        (Locale::Fr, "invalid_client") => {
            "L’application d’où vous venez n’est pas connue de ce service."
        }
        (Locale::En, _) => "The request that brought you here cannot be accepted.",
        (Locale::Fr, _) => "La demande reçue ne peut pas être acceptée.",
    }
}

/// What the person can do about it.
pub fn advice(locale: Locale, code: &str) -> &'static str {
    match (locale, code) {
        (Locale::En, "temporarily_unavailable" | "server_error") => {
            "Wait a moment, then try again."
        }
        (Locale::Fr, "temporarily_unavailable" | "server_error") => {
            "Patientez un instant, puis réessayez."
        }
        (Locale::En, _) => {
            "Go back to the application and sign in again. If that does not work, the application may be misconfigured: let whoever runs it know."
        }
        (Locale::Fr, _) => {
            "Retournez dans l’application et reconnectez-vous. Si cela ne fonctionne pas, l’application est peut-être mal configurée\u{a0}: prévenez la personne qui s’en occupe."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ui_locales_pick_the_first_language_we_speak() {
        assert_eq!(Locale::from_ui_locales("de fr-CA en"), Some(Locale::Fr));
        assert_eq!(Locale::from_ui_locales("EN-gb fr"), Some(Locale::En));
        assert_eq!(Locale::from_ui_locales("de it"), None);
        assert_eq!(Locale::from_ui_locales(""), None);
    }

    #[test]
    fn accept_language_weights_are_honoured() {
        let al = Locale::from_accept_language;
        assert_eq!(al("fr-CH, fr;q=0.9, en;q=0.8, *;q=0.5"), Some(Locale::Fr));
        assert_eq!(al("de, en;q=0.2, fr;q=0.7"), Some(Locale::Fr));
        assert_eq!(al("fr;q=0, en;q=0.1"), Some(Locale::En));
        assert_eq!(
            al("en;q=0.5, fr;q=0.5"),
            Some(Locale::En),
            "a tie keeps the earlier"
        );
        assert_eq!(al("fr;q=2, de"), None, "an invalid q counts as 0");
        assert_eq!(al("fr;q=0.1234"), None);
        assert_eq!(al("*"), None);
        assert_eq!(al(""), None);
    }

    #[test]
    fn ui_locales_win_over_accept_language_and_english_is_the_default() {
        assert_eq!(Locale::negotiate(Some("fr"), Some("en")), Locale::Fr);
        assert_eq!(Locale::negotiate(Some("de"), Some("fr")), Locale::Fr);
        assert_eq!(Locale::negotiate(None, Some("de")), Locale::En);
        assert_eq!(Locale::negotiate(None, None), Locale::En);
    }

    #[test]
    fn qvalues_parse_as_rfc_9110_says() {
        assert_eq!(parse_qvalue("1"), Some(1000));
        assert_eq!(parse_qvalue("1.000"), Some(1000));
        assert_eq!(parse_qvalue("0.5"), Some(500));
        assert_eq!(parse_qvalue("0.05"), Some(50));
        assert_eq!(parse_qvalue("0"), Some(0));
        assert_eq!(parse_qvalue("1.5"), None);
        assert_eq!(parse_qvalue("-1"), None);
        assert_eq!(parse_qvalue("0.x"), None);
    }

    #[test]
    fn known_texts_translate_and_parameter_names_fill_patterns() {
        assert_eq!(
            translate(Locale::Fr, "client_id is repeated").as_deref(),
            Some("Le paramètre client_id apparaît plusieurs fois.")
        );
        assert_eq!(
            translate(Locale::Fr, "parameter state is too long").as_deref(),
            Some("Le paramètre state est trop long.")
        );
        assert_eq!(
            translate(Locale::Fr, "This sign-in link is not valid").as_deref(),
            Some("Ce lien de connexion n’est pas valide")
        );
        assert_eq!(
            translate(Locale::En, "client_id is missing").as_deref(),
            Some("The link does not say which application it comes from (client_id is missing).")
        );
        assert_eq!(translate(Locale::Fr, "something new"), None);
        assert_eq!(translate(Locale::En, "something new"), None);
        assert_eq!(
            translate(Locale::Fr, "a b is repeated"),
            None,
            "only a parameter name fills {{}}"
        );
    }

    #[test]
    fn every_catalog_entry_is_distinct_and_nothing_french_is_left_english() {
        for (i, (key, en, fr)) in CATALOG.iter().enumerate() {
            assert!(
                !CATALOG[..i].iter().any(|(k, _, _)| k == key),
                "{key} twice"
            );
            assert_ne!(en, fr);
            assert_eq!(key.contains("{}"), en.contains("{}"), "{key}");
            assert_eq!(key.contains("{}"), fr.contains("{}"), "{key}");
        }
        let en = serde_json::to_value(&EN).unwrap();
        let fr = serde_json::to_value(&FR).unwrap();
        for (key, value) in en.as_object().unwrap() {
            assert_ne!(&fr[key], value, "{key} is not translated");
            // Placeholders survive translation.
            for p in ["{app}", "{user}"] {
                assert_eq!(
                    value.as_str().unwrap().contains(p),
                    fr[key].as_str().unwrap().contains(p),
                    "{key}: {p}"
                );
            }
        }
    }
}
