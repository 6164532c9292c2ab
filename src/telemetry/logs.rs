//! Log lines: one per event, carrying the fields of the spans the event happened in,
//! flattened (an inner span's field wins over an outer one's). An actor's lines therefore
//! carry `actor` (its instance name, e.g. `writer-3`), a partition pipeline's carry
//! `partition`, and a run's carry `run.id`, whatever the call site wrote. As JSON (one
//! object per line, for log collectors) or as text.

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Spans that stand for an actor's lifetime rather than a unit of work: ractor's own
/// (`Actor`, only an id) and ours (`actor`, with the name).
pub fn is_actor_span(name: &str) -> bool {
    name == "Actor" || name == "actor"
}

/// The event formatter of both log formats. Spans' fields must be recorded with
/// `JsonFields`, which this formatter reads back.
pub struct Flat {
    pub json: bool,
    pub ansi: bool,
}

impl<S, N> FormatEvent<S, N> for Flat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut context = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if span.name() == "Actor" {
                    continue; // ractor's: an internal id only
                }
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<N>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str(&formatted.fields) {
                    // otel.* steer the exporter (span name, kind, status): not log context.
                    context.extend(fields.into_iter().filter(|(k, _)| !k.starts_with("otel.")));
                }
            }
        }
        let mut fields = Map::new();
        event.record(&mut Collect(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::Null);
        let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        if self.json {
            let mut line = Map::new();
            line.insert("timestamp".into(), timestamp.into());
            line.insert("level".into(), meta.level().as_str().into());
            line.insert("target".into(), meta.target().into());
            line.insert("message".into(), message);
            line.extend(context);
            line.extend(fields);
            return writeln!(writer, "{}", Value::Object(line));
        }
        let (dim, reset, level_color) = if self.ansi {
            let color = match *meta.level() {
                tracing::Level::ERROR => "\x1b[31m",
                tracing::Level::WARN => "\x1b[33m",
                tracing::Level::INFO => "\x1b[32m",
                _ => "\x1b[34m",
            };
            ("\x1b[2m", "\x1b[0m", color)
        } else {
            ("", "", "")
        };
        write!(
            writer,
            "{dim}{timestamp}{reset} {level_color}{:>5}{reset} {dim}{}:{reset} {}",
            meta.level().as_str(),
            meta.target(),
            message
                .as_str()
                .map_or_else(|| text(&message), str::to_owned)
        )?;
        for (key, value) in fields.iter().chain(context.iter()) {
            write!(writer, " {dim}{key}={reset}{}", text(value))?;
        }
        writeln!(writer)
    }
}

/// A value as text: strings bare unless they need quotes.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) if s.is_empty() || s.contains(char::is_whitespace) => {
            format!("{s:?}")
        }
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Collects an event's fields as JSON values; an error field gets its whole cause chain.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(
            field.name().into(),
            tributary_actors::error_chain(value).into(),
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::JsonFields;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    fn capture(json: bool, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(buffer.clone())
                .fmt_fields(JsonFields::new())
                .event_format(Flat { json, ansi: false }),
        );
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[derive(Debug, thiserror::Error)]
    #[error("commit failed")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn json_lines_carry_span_fields_and_error_chains() {
        let out = capture(true, || {
            let actor = tracing::info_span!("actor", actor = "writer-3", partition = 3);
            let _a = actor.enter();
            let run = tracing::info_span!("fetch run", otel.name = "GET", run.id = 17);
            let _r = run.enter();
            let error = Outer(std::io::Error::other("connection reset"));
            tracing::warn!(error = &error as &dyn std::error::Error, "write failed");
        });
        let line: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(line["message"], "write failed");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["actor"], "writer-3");
        assert_eq!(line["partition"], 3);
        assert_eq!(line["run.id"], 17);
        assert_eq!(line["error"], "commit failed: connection reset");
        assert!(line.get("otel.name").is_none(), "{line}");
    }

    #[test]
    fn text_lines_show_fields_after_the_message() {
        let out = capture(false, || {
            let actor = tracing::info_span!("actor", actor = "stager");
            let _a = actor.enter();
            tracing::info!(run_id = 4, "run staged");
        });
        assert!(
            out.trim_end().ends_with("run staged run_id=4 actor=stager"),
            "{out}"
        );
    }
}
