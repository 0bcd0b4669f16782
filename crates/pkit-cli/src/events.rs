//! `-v`: the library's lifecycle events (tracing target `pkit`) printed on
//! stderr, one line each — `pkit: [debug] process started program=sh
//! pid=42 …` — or, with `--json`, one JSON object each
//! (`{"event":"log","level":"debug","message":"process started",…}`).
//!
//! A minimal `tracing` subscriber of our own: pkit's events are flat (no
//! spans), so the few lines here do what a subscriber crate would. The
//! events carry only what pkit lets them carry (names, pids, outcomes,
//! durations), never arguments, environment or output. The text lines
//! show every value with its control characters escaped
//! ([`pkit::escape_controls`]); the JSON objects carry the exact values.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Installs the printer for the rest of the process.
pub fn install(json: bool) {
    // Only fails when one is installed already: then that one prints.
    let _ = tracing::subscriber::set_global_default(Printer { json });
}

struct Printer {
    json: bool,
}

/// One event's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    text: String,
    json: serde_json::Map<String, serde_json::Value>,
}

impl Fields {
    /// A field: `shown` goes to the text line with its control characters
    /// escaped (a program name's escape sequences can't act on the
    /// terminal or forge a line), `value` to the JSON object as it is
    /// (JSON escapes them itself).
    fn add(&mut self, field: &Field, shown: String, value: serde_json::Value) {
        let shown = pkit::escape_controls(&shown);
        if field.name() == "message" {
            self.message = shown.into_owned();
            return;
        }
        self.text.push_str(&format!(" {}={shown}", field.name()));
        self.json.insert(field.name().to_string(), value);
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let shown = format!("{value:?}");
        self.add(field, shown.clone(), shown.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.add(field, value.to_string(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.add(field, value.to_string(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.add(field, value.to_string(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let rounded = (value * 1000.0).round() / 1000.0;
        self.add(field, rounded.to_string(), rounded.into());
    }
}

impl Subscriber for Printer {
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        meta.target() == "pkit" || meta.target().starts_with("pkit::")
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let mut err = std::io::stderr().lock();
        if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("event".into(), "log".into());
            obj.insert("level".into(), level.into());
            obj.insert("message".into(), fields.message.into());
            obj.extend(fields.json);
            // One write, the line feed included: a line the program
            // writes to the same stderr meanwhile can't land inside it.
            if let Ok(mut line) = crate::json_line::to_line(&serde_json::Value::Object(obj)) {
                line.push(b'\n');
                let _ = err.write_all(&line);
            }
        } else {
            let line = format!("pkit: [{level}] {}{}\n", fields.message, fields.text);
            let _ = err.write_all(line.as_bytes());
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
