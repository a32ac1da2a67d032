//! Targets that need the server's shipped configuration: the whole message
//! pipeline under the default policy, tokens, and the config loader.

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use palisade_core::Timestamp;
use palisade_core::addr::IpKey;
use palisade_core::auth::{Algorithm, Identity, KeyMaterial, Revocations, TokenRequest, TokenSigner, TokenVerifier};
use palisade_core::client_ids::ClientIds;
use palisade_core::csrf::CsrfSettings;
use palisade_core::guard::{Guard, GuardSettings, Standing};
use palisade_core::ownership::Owners;
use palisade_core::policy::Policy;
use palisade_core::seams::commit;
use palisade_core::session::{Context, Decision, Session, SessionLimits};
use palisade_core::store::MemoryNonces;
use palisade_server::config::{Config, Env, Source};
use palisade_server::settings::compile_policy;
use rand::SeedableRng as _;

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);
const SECRET: [u8; 32] = [7; 32];
/// Frames one pipeline input may hold (one per line).
const MAX_FRAMES: usize = 64;

/// `PALISADE_*` variables given to the loader instead of the process's.
struct Vars(Vec<(String, String)>);

impl Env for Vars {
    fn palisade_vars(&self) -> Vec<(String, String)> {
        self.0.clone()
    }
}

/// The shipped defaults (crates/palisade-server/src/config/palisade.toml).
pub(crate) fn defaults() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Config::load(Source::Defaults, &Vars(Vec::new())).unwrap_or_else(|e| panic!("shipped config: {e}"))
    })
}

/// What every connection shares, built once from the defaults.
struct Shared {
    policy: Policy,
    verifier: TokenVerifier,
    identity: Identity,
    guard: GuardSettings,
    limits: SessionLimits,
}

fn key() -> KeyMaterial {
    KeyMaterial {
        id: "k".into(),
        algorithm: Algorithm::HS256,
        secret: Some(SECRET.to_vec()),
        public_pem: None,
        private_pem: None,
    }
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let config = defaults();
        let options = palisade_core::auth::VerifyOptions {
            leeway: config.auth.leeway,
            issuer: Some(config.auth.issuer.clone()),
            audience: Some(config.auth.audience.clone()),
            max_token_bytes: config.auth.max_token_bytes,
        };
        let verifier = TokenVerifier::new(&[key()], options.clone()).unwrap_or_else(|e| panic!("fuzz key: {e}"));
        let mut rng = rand::rngs::StdRng::seed_from_u64(23);
        let request =
            TokenRequest { user_id: "alice".into(), ttl: Duration::from_secs(3600), ..TokenRequest::default() };
        let token = TokenSigner::new(&key(), &options)
            .and_then(|signer| signer.mint(request, NOW, &mut rng))
            .unwrap_or_else(|e| panic!("fuzz token: {e}"));
        let identity = verifier.verify(&token, NOW).unwrap_or_else(|e| panic!("fuzz identity: {e}"));
        let l = &config.limits;
        Shared {
            policy: compile_policy(config).unwrap_or_else(|e| panic!("shipped policy: {e}")),
            verifier,
            identity,
            guard: config.abuse.settings().unwrap_or_else(|e| panic!("shipped guard: {e}")),
            limits: SessionLimits {
                max_rooms: l.max_rooms_per_connection,
                expiry_notice: config.auth.expiry_notice,
                expiry_grace: config.auth.leeway,
                csrf: CsrfSettings { rotate_every: config.csrf.rotate_every, grace: config.csrf.grace },
                heartbeat_interval: l.heartbeat_interval,
                silence_limit: l.heartbeat_interval + l.heartbeat_timeout,
            },
        }
    })
}

/// One connection of alice (role `user`) under the shipped default policy
/// and guard: each line of the input is one text frame, 100 ms apart, each
/// accepted `send` taken through the memory commit's checks. Invariant:
/// whatever the frames, every one gets a decision and nothing panics.
pub fn pipeline(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let s = shared();
    let guard = Guard::new(s.guard.clone());
    let revocations = Revocations::default();
    let owners = Owners::default();
    let client_ids = ClientIds::default();
    let nonces = MemoryNonces::new(1024, 1024);
    let cx = Context {
        policy: &s.policy,
        verifier: &s.verifier,
        guard: &guard,
        revocations: &revocations,
        owners: &owners,
        client_ids: &client_ids,
    };
    let standing = Standing::new(IpKey::of(std::net::Ipv4Addr::new(127, 0, 0, 2).into()));
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let mut session = Session::new(s.identity.clone(), s.limits, standing, NOW, &mut rng);
    let mut now = NOW;
    for frame in text.split('\n').take(MAX_FRAMES) {
        now = now.saturating_add(Duration::from_millis(100));
        if let Decision::Publish { room, event, rate, nonce, history, .. } = session.on_text(cx, frame, now) {
            let claim = session.claim(&room, &event, rate, nonce, history);
            let _ = commit::check(&claim, &guard, &nonces, now);
        }
    }
}

/// Token header and claims parsing. The first byte picks how the rest is
/// used: as a whole token, or as the claims (or the header, when the rest
/// starts with `H`) of a token signed with the verifier's own key, so the
/// claims parser is reached past the signature check. Invariant: a token
/// over `max_token_bytes` is refused.
pub fn token(data: &[u8]) {
    let Some((&first, rest)) = data.split_first() else { return };
    let s = shared();
    let token = match first % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => signed(br#"{"alg":"HS256","typ":"JWT","kid":"k"}"#, rest),
        _ => {
            let claims = br#"{"sub":"u1","iss":"palisade","aud":"palisade","exp":1800003600,"iat":1800000000}"#;
            signed(rest, claims)
        }
    };
    let verdict = s.verifier.verify(&token, NOW);
    if token.len() > s.verifier.options().max_token_bytes {
        assert!(verdict.is_err(), "a token over max_token_bytes was accepted");
    }
}

/// `header.claims.signature` signed with the verifier's key.
fn signed(header: &[u8], claims: &[u8]) -> String {
    let mut token = URL_SAFE_NO_PAD.encode(header);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(claims, &mut token);
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&SECRET) else { return token };
    mac.update(token.as_bytes());
    let signature = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// The config and policy loader: the input as a config file merged over
/// the defaults, except its `PALISADE_…=value` lines, which are the
/// environment's overrides. An accepted config then compiles its policy,
/// guard and login settings and is explained. Invariant: errors, never
/// panics.
pub fn config_loader(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (vars, file): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|line| line.starts_with("PALISADE_") && line.contains('='));
    let vars = vars.iter().filter_map(|line| line.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let dir = std::env::temp_dir().join(format!("palisade-fuzz-config-{}", std::process::id()));
    let path = dir.join(format!("{:?}.toml", std::thread::current().id()).replace(['(', ')'], ""));
    if std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, file.join("\n"))).is_err() {
        return;
    }
    if let Ok(config) = Config::load(Source::File(&path), &Vars(vars)) {
        let _ = compile_policy(&config);
        let _ = config.abuse.settings();
        let _ = config.login.settings();
        let _ = palisade_server::config::explain::weaknesses(&config, false);
    }
}
