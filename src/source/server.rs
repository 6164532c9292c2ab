//! The HTTP side of the embedded source (actix-web).
//!
//! It holds requests to the real API's contract, so no test can pass against a source
//! more lenient than randomuser.me: a page outside 1..=`max_page` is answered with page
//! 1 (and `info.page` says 1), `results` outside 1..=5000 (or not a whole number) with
//! one user, a `nat` list with an unknown code with users of every nationality; a
//! missing seed is drawn at random and returned in `info.seed`.

use super::config::{Config, Faults};
use super::data::{self, Nationality};
use super::generate::{self, API_VERSION};
use super::random::Rng;
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_json::value::RawValue;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tributary_actors::model::raw_user::{MAX_RESULTS, NAT_SEED_LENGTH, api_length};

/// Stops a running source (`stop(graceful)`).
pub use actix_web::dev::ServerHandle;

struct State {
    faults: Faults,
    max_page: u32,
    /// Requests served, feeding the per-request fault draws.
    requests: AtomicU64,
}

#[derive(Debug, Deserialize)]
struct Query {
    results: Option<String>,
    seed: Option<String>,
    page: Option<String>,
    nat: Option<String>,
    inc: Option<String>,
    exc: Option<String>,
}

/// `info`, in the API's key order.
#[derive(Serialize)]
struct Info<'a> {
    seed: &'a str,
    results: u32,
    page: u32,
    version: &'static str,
}

#[derive(Serialize)]
struct Page<'a> {
    results: Vec<Box<RawValue>>,
    info: Info<'a>,
}

/// A whole number in `1..=max`, or what the real API falls back to: 1.
fn number_or_one(param: Option<&str>, max: u32) -> u32 {
    param
        .and_then(|p| p.trim().parse::<u32>().ok())
        .filter(|n| (1..=max).contains(n))
        .unwrap_or(1)
}

fn list(param: Option<&str>) -> Vec<String> {
    param
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The nationalities a `nat` list asks for; empty (all of them) when it names none or
/// names a code the API does not have, which makes the real API ignore the whole list.
fn wanted_nationalities(param: Option<&str>) -> Vec<&'static Nationality> {
    let codes: Vec<&str> = param
        .unwrap_or("")
        .split(',')
        .filter(|c| !c.is_empty())
        .collect();
    codes
        .iter()
        .map(|code| data::nationality(code))
        .collect::<Option<Vec<_>>>()
        .unwrap_or_default()
}

async fn api(state: web::Data<State>, query: web::Query<Query>) -> HttpResponse {
    let n = state.requests.fetch_add(1, Ordering::Relaxed);
    let faults = &state.faults;
    let mut draw = Rng::new(&[b"request", &faults.seed.to_be_bytes(), &n.to_be_bytes()]);
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    if draw.unit() < faults.error_rate {
        return HttpResponse::InternalServerError()
            .json(json!({ "error": "injected fault: internal error" }));
    }
    if draw.unit() < faults.throttle_rate {
        return HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", faults.retry_after_s.to_string()))
            .json(json!({ "error": "injected fault: rate limited" }));
    }

    let results = number_or_one(query.results.as_deref(), MAX_RESULTS);
    let page = number_or_one(query.page.as_deref(), state.max_page);
    let seed = query
        .seed
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{:016x}", draw.next_u64()));
    let mut nationalities = wanted_nationalities(query.nat.as_deref());
    // randomuser.me reads an 18-character seed as 16 characters and a nationality (two
    // hex digits: its index among the 21), which wins over `nat`; `info.seed` then gets
    // that index appended once more. An index past the 21 breaks the real API.
    let mut info_seed = seed.clone();
    let mut seed = seed;
    if api_length(&seed) == NAT_SEED_LENGTH {
        let units: Vec<u16> = seed.encode_utf16().collect();
        let (head, code) = units.split_at(16);
        let nat = u8::from_str_radix(&String::from_utf16_lossy(code), 16)
            .ok()
            .and_then(|index| Some((index, data::nationalities().get(usize::from(index))?)));
        let Some((index, nat)) = nat else {
            return HttpResponse::InternalServerError().json(json!({
                "error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."
            }));
        };
        info_seed = format!("{seed}{index:02x}");
        seed = String::from_utf16_lossy(head);
        nationalities = vec![nat];
    }
    // Drawn only when the fault is on, so other faults' sequences stay as they were.
    let users_page = if faults.repeat_rate > 0.0 && draw.unit() < faults.repeat_rate {
        1
    } else {
        page
    };
    let (inc, exc) = (list(query.inc.as_deref()), list(query.exc.as_deref()));
    let keep = |field: &str| {
        (inc.is_empty() || inc.iter().any(|f| f == field)) && !exc.iter().any(|f| f == field)
    };

    let mut records = Vec::with_capacity(results as usize);
    for index in 0..results {
        let user = generate::user(&seed, users_page, index, &nationalities);
        let mut bad = Rng::new(&[
            b"bad",
            seed.as_bytes(),
            &page.to_be_bytes(),
            &index.to_be_bytes(),
        ]);
        let text = if bad.unit() < faults.bad_record_rate {
            // A broken record goes through a JSON tree (its keys then come sorted).
            let mut value: serde_json::Value =
                serde_json::from_str(&user.to_json()).unwrap_or_default();
            generate::corrupt(&mut value, &seed, page, index);
            if let Some(fields) = value.as_object_mut() {
                fields.retain(|field, _| keep(field));
            }
            value.to_string()
        } else {
            user.to_json_with(keep)
        };
        match RawValue::from_string(text) {
            Ok(record) => records.push(record),
            Err(error) => {
                return HttpResponse::InternalServerError()
                    .json(json!({ "error": format!("generated record is not JSON: {error}") }));
            }
        }
    }
    let body = serde_json::to_string(&Page {
        results: records,
        info: Info {
            seed: &info_seed,
            results,
            page,
            version: API_VERSION,
        },
    })
    .unwrap_or_default();

    if draw.unit() < faults.truncate_rate {
        let cut = body.len() / 2;
        let cut = (0..=cut)
            .rev()
            .find(|&i| body.is_char_boundary(i))
            .unwrap_or(0);
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(body[..cut].to_owned());
    }
    if draw.unit() < faults.malformed_rate {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("<html><body>upstream proxy error</body></html>");
    }
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body)
}

/// Builds the server on an already bound listener (port 0 in tests) and returns it with
/// its address; await the server to run it, stop it with its handle.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    config: &Config,
    listener: std::net::TcpListener,
) -> std::io::Result<(actix_web::dev::Server, std::net::SocketAddr)> {
    let address = listener.local_addr()?;
    let state = web::Data::new(State {
        faults: config.faults.clone(),
        max_page: config.max_page,
        requests: AtomicU64::new(0),
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/api", web::get().to(api))
            .route("/api/", web::get().to(api))
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok((server, address))
}

/// A free loopback address below the kernel's ephemeral port range, for a source that
/// is stopped and started again at the same address (an outage, in tests and the chaos
/// suite): no outgoing connection can take its port meanwhile, as one can take a port
/// that binding port 0 picked. Each call in a process gets another port.
///
/// # Errors
/// No port between 20000 and the ephemeral range is free.
pub fn stable_loopback_address() -> std::io::Result<std::net::SocketAddr> {
    stable_address(std::net::Ipv4Addr::LOCALHOST.into())
}

/// [`stable_loopback_address`] on another of this host's addresses (the container
/// chaos suite's source listens on the compose network's gateway, where its containers
/// reach the host).
pub fn stable_address(ip: std::net::IpAddr) -> std::io::Result<std::net::SocketAddr> {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768);
    let (low, span) = (20_000, ephemeral_low.saturating_sub(20_000).max(1));
    let base = std::process::id().wrapping_mul(97);
    (0..span)
        .map(|_| low + base.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % span)
        .find_map(|port| {
            std::net::TcpListener::bind((ip, u16::try_from(port).ok()?))
                .ok()?
                .local_addr()
                .ok()
        })
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::AddrNotAvailable,
                format!("no free port on {ip} below the ephemeral range"),
            )
        })
}

/// Serves on `address` (again) in the background of the current Tokio runtime; the
/// handle stops it.
///
/// # Errors
/// The address cannot be bound.
pub fn spawn_at(
    config: &Config,
    address: std::net::SocketAddr,
) -> std::io::Result<actix_web::dev::ServerHandle> {
    let listener = std::net::TcpListener::bind(address)?;
    let (server, _) = serve(config, listener)?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok(handle)
}

/// Serves on a free loopback port in the background of the current Tokio runtime (the
/// integration tests, the chaos suite, the bench): the handle stops it, the address is
/// where `ingest.source_url` points.
///
/// # Errors
/// No loopback port can be bound.
pub fn spawn_on_loopback(
    config: &Config,
) -> std::io::Result<(actix_web::dev::ServerHandle, std::net::SocketAddr)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let (server, address) = serve(config, listener)?;
    let handle = server.handle();
    tokio::spawn(server);
    Ok((handle, address))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;
    use tributary_actors::model::raw_user::{MAX_PAGE, parse_page};

    async fn get(faults: Faults, uri: &str) -> (u16, Option<String>, Vec<u8>) {
        get_with(faults, MAX_PAGE, uri).await
    }

    async fn get_with(faults: Faults, max_page: u32, uri: &str) -> (u16, Option<String>, Vec<u8>) {
        let state = web::Data::new(State {
            faults,
            max_page,
            requests: AtomicU64::new(0),
        });
        let app = test::init_service(
            App::new()
                .app_data(state)
                .route("/api/", web::get().to(api)),
        )
        .await;
        let response =
            test::call_service(&app, test::TestRequest::get().uri(uri).to_request()).await;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (
            status,
            retry_after,
            test::read_body(response).await.to_vec(),
        )
    }

    fn page_of(body: &[u8]) -> tributary_actors::model::SourcePage {
        parse_page(body).unwrap()
    }

    #[actix_web::test]
    async fn pages_are_deterministic_and_shaped_like_the_api() {
        let (status, _, body) = get(Faults::default(), "/api/?results=3&seed=abc&page=2").await;
        assert_eq!(status, 200);
        let (_, _, again) = get(Faults::default(), "/api/?results=3&seed=abc&page=2").await;
        assert_eq!(body, again);
        let page = page_of(&body);
        assert_eq!(page.results.len(), 3);
        assert_eq!(page.info.seed, "abc");
        assert_eq!(page.info.page, 2);
        assert_eq!(page.info.results, 3);
        assert_eq!(page.info.version, "1.4");
        let text = String::from_utf8(body).unwrap();
        assert!(
            text.ends_with(r#""info":{"seed":"abc","results":3,"page":2,"version":"1.4"}}"#),
            "{text}"
        );
    }

    /// What the real API does with requests it cannot serve: never an error, always
    /// page 1 or one user, and `info` says so.
    #[actix_web::test]
    async fn out_of_range_requests_get_what_the_real_api_gives() {
        for (uri, page, results) in [
            ("/api/?seed=s&page=10001&results=2", 1, 2),
            ("/api/?seed=s&page=0&results=2", 1, 2),
            ("/api/?seed=s&page=-3&results=2", 1, 2),
            ("/api/?seed=s&page=x&results=2", 1, 2),
            ("/api/?seed=s&page=10000&results=2", 10_000, 2),
            ("/api/?seed=s&page=2&results=5001", 2, 1),
            ("/api/?seed=s&page=2&results=0", 2, 1),
            ("/api/?seed=s&page=2&results=2.5", 2, 1),
            ("/api/?seed=s&page=2&results=abc", 2, 1),
            ("/api/?seed=s&page=2&results=5000", 2, 5_000),
        ] {
            let (status, _, body) = get(Faults::default(), uri).await;
            assert_eq!(status, 200, "{uri}");
            let answer = page_of(&body);
            assert_eq!(
                (answer.info.page, answer.info.results),
                (page, results),
                "{uri}"
            );
            assert_eq!(answer.results.len() as u32, results, "{uri}");
        }
        // Past max_page the answer is page 1's users, exactly.
        let (_, _, page_one) =
            get_with(Faults::default(), 3, "/api/?seed=s&page=1&results=4").await;
        let (_, _, page_four) =
            get_with(Faults::default(), 3, "/api/?seed=s&page=4&results=4").await;
        assert_eq!(page_one, page_four);
    }

    /// The real API's reading of an 18-character seed: 16 characters and a nationality.
    #[actix_web::test]
    async fn an_eighteen_character_seed_names_a_nationality() {
        // 0x0c is IR, the 13th of the API's 21.
        let (status, _, body) =
            get(Faults::default(), "/api/?seed=abcdefghijklmnop0c&results=5").await;
        assert_eq!(status, 200);
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["info"]["seed"], "abcdefghijklmnop0c0c");
        assert!(
            value["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["nat"] == "IR")
        );
        let (_, _, plain) = get(
            Faults::default(),
            "/api/?seed=abcdefghijklmnop&results=5&nat=ir",
        )
        .await;
        let plain: serde_json::Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            value["results"], plain["results"],
            "drawn from the first 16 characters"
        );
        let (status, _, _) = get(Faults::default(), "/api/?seed=abcdefghijklmnopzz").await;
        assert_eq!(status, 500, "no nationality there: the real API fails");
    }

    #[actix_web::test]
    async fn a_missing_seed_is_drawn_and_reported() {
        let (_, _, body) = get(Faults::default(), "/api/?results=1").await;
        let seed = page_of(&body).info.seed;
        assert_eq!(seed.len(), 16);
        assert!(seed.chars().all(|c| c.is_ascii_hexdigit()), "{seed}");
    }

    #[actix_web::test]
    async fn nat_inc_and_exc_filter() {
        let (_, _, body) = get(
            Faults::default(),
            "/api/?results=20&seed=n&nat=gb,FR&inc=nat,name,login",
        )
        .await;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        for user in value["results"].as_array().unwrap() {
            let nat = user["nat"].as_str().unwrap();
            assert!(nat == "GB" || nat == "FR", "{nat}");
            let keys: Vec<&String> = user.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 3, "{keys:?}");
        }
        let (_, _, body) = get(
            Faults::default(),
            "/api/?results=2&seed=n&exc=login,picture",
        )
        .await;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(value["results"][0].get("login").is_none());
        assert!(value["results"][0].get("email").is_some());
        // inc minus exc.
        let (_, _, body) = get(
            Faults::default(),
            "/api/?results=1&seed=n&inc=nat,email&exc=email",
        )
        .await;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["results"][0].as_object().unwrap().len(), 1);
    }

    #[actix_web::test]
    async fn an_unknown_nationality_makes_the_list_ignored() {
        let (_, _, body) = get(Faults::default(), "/api/?results=300&seed=n&nat=gb,xx").await;
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let nats: std::collections::BTreeSet<&str> = value["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["nat"].as_str().unwrap())
            .collect();
        assert!(nats.len() > 10, "every nationality, not only GB: {nats:?}");
    }

    #[actix_web::test]
    async fn a_repeating_source_serves_page_one_under_another_page() {
        let repeat = Faults {
            repeat_rate: 1.0,
            ..Faults::default()
        };
        let (_, _, one) = get(Faults::default(), "/api/?seed=r&page=1&results=3").await;
        let (_, _, five) = get(repeat, "/api/?seed=r&page=5&results=3").await;
        let (one, five) = (page_of(&one), page_of(&five));
        assert_eq!(five.info.page, 5, "info names the page asked for");
        let ids = |p: &tributary_actors::model::SourcePage| -> Vec<String> {
            p.results.iter().map(|r| r.get().to_owned()).collect()
        };
        assert_eq!(ids(&one), ids(&five), "but the users are page 1's");
    }

    #[actix_web::test]
    async fn faults_are_injected() {
        let errors = Faults {
            error_rate: 1.0,
            ..Faults::default()
        };
        assert_eq!(get(errors, "/api/").await.0, 500);
        let throttled = Faults {
            throttle_rate: 1.0,
            retry_after_s: 7,
            ..Faults::default()
        };
        let (status, retry_after, _) = get(throttled, "/api/").await;
        assert_eq!((status, retry_after.as_deref()), (429, Some("7")));
        let truncated = Faults {
            truncate_rate: 1.0,
            ..Faults::default()
        };
        assert!(parse_page(&get(truncated, "/api/?results=5&seed=t").await.2).is_err());
        let malformed = Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        };
        assert!(parse_page(&get(malformed, "/api/?results=5&seed=t").await.2).is_err());
        let bad = Faults {
            bad_record_rate: 0.5,
            ..Faults::default()
        };
        let page = parse_page(&get(bad, "/api/?results=200&seed=b").await.2).unwrap();
        let rejected = page
            .results
            .iter()
            .filter(|r| tributary_actors::model::RawUser::parse(r.get()).is_err())
            .count();
        assert!(
            (60..140).contains(&rejected),
            "{rejected} of 200 rejected at rate 0.5"
        );
    }
}
