//! The admin HTTP server of `tributary run` (actix-web, loopback by default).
//!
//! `/healthz` answers while the process lives. With `tributary run --test-faults`, and
//! only then, `POST /test/panic/{actor}` arms a panic in the next message an actor of
//! that kind handles (scheduler, fetcher, stager, producer, consumer, transformer,
//! writer), for the chaos suite.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde::Deserialize;
use tributary_actors::faults;
use tributary_actors::validate::Findings;

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address of the admin HTTP server; empty turns it off. Port 0 picks a free port
    /// (logged at start).
    #[serde(default = "default_bind")]
    pub bind: String,
}

fn default_bind() -> String {
    "127.0.0.1:9464".into()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: default_bind(),
        }
    }
}

impl Config {
    pub fn validate(&self, f: &mut Findings) {
        if !self.bind.is_empty() && self.bind.parse::<std::net::SocketAddr>().is_err() {
            f.invalid(
                "bind",
                format!(
                    "{:?} is not an ip:port address (or empty to turn it off)",
                    self.bind
                ),
            );
        }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().body("ok\n")
}

async fn panic_actor(kind: web::Path<String>) -> HttpResponse {
    if faults::arm(&kind) {
        tracing::warn!(actor = %kind, "test fault: panic armed");
        HttpResponse::Ok().body(format!("panic armed for the next {kind} message\n"))
    } else {
        HttpResponse::NotFound().body(format!(
            "unknown actor kind {kind:?}; known: {}\n",
            faults::KINDS.join(", ")
        ))
    }
}

/// Starts the server on `listener`; the test-fault routes exist only with `test_faults`.
///
/// # Errors
/// The listener cannot be used.
pub fn serve(
    listener: std::net::TcpListener,
    test_faults: bool,
) -> std::io::Result<actix_web::dev::Server> {
    Ok(HttpServer::new(move || {
        let app = App::new().route("/healthz", web::get().to(healthz));
        if test_faults {
            app.route("/test/panic/{kind}", web::post().to(panic_actor))
        } else {
            app
        }
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run())
}
