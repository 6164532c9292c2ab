//! The HTTP side of the embedded source (actix-web).

use super::config::{Config, Faults};
use super::data::{self, Nationality};
use super::generate::{self, API_VERSION, Rng};
use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Largest `results` the real API serves in one page.
pub const MAX_RESULTS: u32 = 5_000;

struct State {
    faults: Faults,
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

fn bad_request(message: String) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({ "error": message }))
}

fn list(param: &Option<String>) -> Vec<String> {
    param
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
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

    let results = match query.results.as_deref().map(str::parse::<u32>) {
        None => 1,
        Some(Ok(r)) if (1..=MAX_RESULTS).contains(&r) => r,
        Some(_) => return bad_request(format!("results must be a number from 1 to {MAX_RESULTS}")),
    };
    let page = match query.page.as_deref().map(str::parse::<u32>) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => return bad_request("page must be a number from 1".into()),
    };
    let seed = query
        .seed
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("{:016x}", draw.next_u64()));
    // Unknown nationalities are ignored, as the real API does.
    let wanted = list(&query.nat);
    let nationalities: Vec<&'static Nationality> = data::NATIONALITIES
        .iter()
        .filter(|n| wanted.iter().any(|w| w.eq_ignore_ascii_case(n.code)))
        .collect();
    let (inc, exc) = (list(&query.inc), list(&query.exc));
    let keep = |field: &str| {
        (inc.is_empty() || inc.iter().any(|f| f == field)) && !exc.iter().any(|f| f == field)
    };

    let users: Vec<serde_json::Value> = (0..results)
        .map(|index| {
            let mut user = generate::user(&seed, page, index, &nationalities);
            let mut bad = Rng::new(&[
                b"bad",
                seed.as_bytes(),
                &page.to_be_bytes(),
                &index.to_be_bytes(),
            ]);
            if bad.unit() < faults.bad_record_rate {
                generate::corrupt(&mut user, &seed, page, index);
            }
            if let Some(fields) = user.as_object_mut() {
                fields.retain(|field, _| keep(field));
            }
            user
        })
        .collect();
    let body = json!({
        "results": users,
        "info": { "seed": seed, "results": results, "page": page, "version": API_VERSION },
    })
    .to_string();

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
    use tributary_actors::model::raw_user::parse_page;

    async fn get(faults: Faults, uri: &str) -> (u16, Option<String>, Vec<u8>) {
        let state = web::Data::new(State {
            faults,
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

    #[actix_web::test]
    async fn pages_are_deterministic_and_shaped_like_the_api() {
        let (status, _, body) = get(Faults::default(), "/api/?results=3&seed=abc&page=2").await;
        assert_eq!(status, 200);
        let (_, _, again) = get(Faults::default(), "/api/?results=3&seed=abc&page=2").await;
        assert_eq!(body, again);
        let page = parse_page(&body).unwrap();
        assert_eq!(page.results.len(), 3);
        assert_eq!(page.info.seed, "abc");
        assert_eq!(page.info.page, 2);
        assert_eq!(page.info.version, "1.4");
    }

    #[actix_web::test]
    async fn nat_inc_and_exc_filter() {
        let (_, _, body) = get(
            Faults::default(),
            "/api/?results=20&seed=n&nat=gb,fr&inc=nat,name,login",
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
    }

    #[actix_web::test]
    async fn out_of_range_results_are_refused() {
        for uri in [
            "/api/?results=0",
            "/api/?results=5001",
            "/api/?results=x",
            "/api/?page=0",
        ] {
            let (status, _, _) = get(Faults::default(), uri).await;
            assert_eq!(status, 400, "{uri}");
        }
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
